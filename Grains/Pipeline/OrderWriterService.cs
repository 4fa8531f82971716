using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using OrleansFlashSale.Grains.Messaging;
using OrleansFlashSale.Grains.Persistence;

namespace OrleansFlashSale.Grains.Pipeline;

/// <summary>
/// Durable JetStream consumer of committed deductions, shared by every silo: hands each order to the per-SKU
/// group committer (many orders of one SKU become one MySQL transaction) and acknowledges a message only after its
/// group committed. Transient failures are redelivered with a delay; a message that cannot be written (unreadable,
/// or it would take MySQL's stock below zero) goes to the dead-letter stream with the reason, never silently away.
/// </summary>
public sealed class OrderWriterService : BackgroundService
{
    private const string Consumer = "orders-writer";
    private const int MaxInFlight = 8192;
    private const int MaxDeliveries = 20;
    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(1);

    private readonly JetStreamConnection _nats;
    private readonly GroupCommitter _committer;
    private readonly FlashSaleMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<OrderWriterService> _logger;
    private readonly SemaphoreSlim _inFlight = new(MaxInFlight);

    public OrderWriterService(JetStreamConnection nats, GroupCommitter committer, FlashSaleMetrics metrics, ILogger<OrderWriterService> logger)
    {
        _nats = nats;
        _committer = committer;
        _metrics = metrics;
        // Wall-clock on purpose: the lag is measured against Redis' TIME, not against a test's fake sale clock.
        _time = TimeProvider.System;
        _logger = logger;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var delay = TimeSpan.FromMilliseconds(200);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await _nats.EnsureStreamsAsync(stoppingToken);
                var consumer = await _nats.JetStream.CreateOrUpdateConsumerAsync(_nats.Topology.DeductionsStream, new ConsumerConfig(Consumer)
                {
                    DurableName = Consumer,
                    AckPolicy = ConsumerConfigAckPolicy.Explicit,
                    AckWait = TimeSpan.FromSeconds(30),
                    MaxAckPending = MaxInFlight,
                    MaxDeliver = -1,
                }, stoppingToken);
                PipelineLog.WriterStarted(_logger, _nats.Topology.DeductionsStream, Consumer);
                delay = TimeSpan.FromMilliseconds(200);
                await foreach (var message in consumer.ConsumeAsync<byte[]>(opts: new NatsJSConsumeOpts { MaxMsgs = 1000 }, cancellationToken: stoppingToken))
                {
                    await _inFlight.WaitAsync(stoppingToken);
                    _ = WriteAsync(message);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                PipelineLog.WriterConsumeFailed(_logger, ex, delay);
                try
                {
                    await Task.Delay(delay, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(10).Ticks));
            }
        }
    }

    private async Task WriteAsync(INatsJSMsg<byte[]> message)
    {
        try
        {
            DeductionRecord record;
            try
            {
                record = PipelineJson.Deserialize<DeductionRecord>(message.Data ?? []);
                InventorySql.Check(record);
            }
            catch (Exception ex) when (ex is JsonException or ArgumentException)
            {
                await DeadLetterAsync(message, DeadLetterReason.Unreadable, "unreadable: " + ex.Message);
                return;
            }

            try
            {
                await _committer.SubmitAsync(record);
                _metrics.PipelineLag(_time.GetUtcNow().ToUnixTimeMilliseconds() - record.CommittedAtMs);
                await message.AckAsync();
            }
            catch (InventoryDriftException ex)
            {
                await DeadLetterAsync(message, DeadLetterReason.Drift, ex.Message);
            }
            catch (Exception ex)
            {
                var delivery = message.Metadata?.NumDelivered ?? 0;
                // A database that is down or restarting is waited out, however long: dead-lettering an
                // acknowledged order because MySQL was away would lose it from MySQL. Only errors that retrying
                // cannot cure count towards the limit.
                if (delivery >= MaxDeliveries && !IsOutage(ex))
                {
                    await DeadLetterAsync(message, DeadLetterReason.Failed, $"failed {delivery} times: {ex.Message}");
                    return;
                }

                PipelineLog.WriteFailed(_logger, ex, record.OrderId, record.Sku, delivery, RetryDelay);
                await message.NakAsync(new AckOpts { NakDelay = RetryDelay });
            }
        }
        catch (Exception ex)
        {
            // Even the ack failed (NATS away): the server redelivers after the ack wait; the writer is idempotent.
            PipelineLog.WriterConsumeFailed(_logger, ex, TimeSpan.Zero);
        }
        finally
        {
            _inFlight.Release();
        }
    }

    private static bool IsOutage(Exception ex) =>
        MySqlOrderStore.IsTransient(ex) || ex is MySqlConnector.MySqlException { IsTransient: true } || ex.InnerException is System.Net.Sockets.SocketException
        || ex is MySqlConnector.MySqlException { ErrorCode: MySqlConnector.MySqlErrorCode.UnableToConnectToHost };

    private async Task DeadLetterAsync(INatsJSMsg<byte[]> message, string kind, string reason)
    {
        var sequence = message.Metadata?.Sequence.Stream ?? 0;
        var headers = new NatsHeaders { ["FlashSale-Reason"] = reason, ["FlashSale-Original-Subject"] = message.Subject };
        var ack = await _nats.JetStream.PublishAsync(_nats.Topology.DeadLetter("orders"), message.Data ?? [], headers: headers);
        ack.EnsureSuccess();
        _metrics.DeadLetter(kind);
        PipelineLog.DeadLettered(_logger, sequence, reason);
        await message.AckTerminateAsync();
    }

    public override void Dispose()
    {
        _inFlight.Dispose();
        base.Dispose();
    }
}
