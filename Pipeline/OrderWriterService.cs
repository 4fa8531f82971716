using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using OrleansFlashSale.Messaging;
using OrleansFlashSale.Persistence;

namespace OrleansFlashSale.Pipeline;

/// <summary>
/// Durable JetStream consumer of committed deductions, shared by every silo: hands the orders of each message (a
/// transaction's, or a single repaired one) to the per-SKU group committer (many orders of one SKU become one MySQL
/// transaction) and acknowledges a message only after all its orders are committed. Transient failures are
/// redelivered with a delay; an order that cannot be written (refused by the schema, or it would take MySQL's stock
/// below zero) goes to the dead-letter stream on its own with the reason, never silently away.
/// </summary>
public sealed class OrderWriterService : BackgroundService
{
    private const string Consumer = JetStreamTopology.WriterConsumer;
    private const int MaxInFlight = 8192;
    private const int MaxDeliveries = 20;
    private static readonly TimeSpan MaxConsumeRetryDelay = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan PaceRefresh = TimeSpan.FromSeconds(1);

    // Paced, the writer fetches a few messages at a time and waits its turn between fetches. A standing consume
    // would pull up to a thousand messages ahead, whose ack timers run out while they wait for the pace.
    private const int PacedFetch = 16;
    private static readonly TimeSpan PacedPoll = TimeSpan.FromMilliseconds(250);

    private readonly JetStreamConnection _nats;
    private readonly GroupCommitter _committer;
    private readonly PipelineMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<OrderWriterService> _logger;
    private readonly SemaphoreSlim _inFlight = new(MaxInFlight);
    private readonly WriterPacer _pacer;
    private readonly DurableConsumerLoop _consumer;
    private CancellationTokenSource? _consume;

    public OrderWriterService(JetStreamConnection nats, GroupCommitter committer, PipelineMetrics metrics, WriterPacer pacer,
        ILogger<OrderWriterService> logger)
    {
        _pacer = pacer;
        _nats = nats;
        _committer = committer;
        _metrics = metrics;
        // Wall-clock on purpose: the lag is measured against Redis' TIME, not against a test's fake sale clock.
        _time = TimeProvider.System;
        _logger = logger;
        _consumer = new DurableConsumerLoop(nats, nats.Topology.DeductionsStream, ConsumerConfig, MaxConsumeRetryDelay,
            attached: () => PipelineLog.WriterStarted(_logger, _nats.Topology.DeductionsStream, Consumer),
            failed: (ex, delay) => PipelineLog.WriterConsumeFailed(_logger, ex, delay));
    }

    private static ConsumerConfig ConsumerConfig() => new(Consumer)
    {
        DurableName = Consumer,
        AckPolicy = ConsumerConfigAckPolicy.Explicit,
        AckWait = TimeSpan.FromSeconds(30),
        MaxAckPending = MaxInFlight,
        MaxDeliver = -1,
    };

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var refresh = RefreshPaceAsync(stoppingToken);
        await _consumer.RunAsync(WriteFromAsync, stoppingToken);
        await refresh;
    }

    private async Task RefreshPaceAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(PaceRefresh);
        try
        {
            do
            {
                await _pacer.RefreshAsync();
                if (_pacer.Paced)
                {
                    try
                    {
                        Volatile.Read(ref _consume)?.Cancel();
                    }
                    catch (ObjectDisposedException)
                    {
                        // The consume had just ended by itself.
                    }
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// Reads the attached consumer: paced, a few messages at a time; otherwise a standing consume, until a pace is set
    /// (then the consumer is attached again and read paced) or the consume ends by itself.
    /// </summary>
    private async Task<ConsumerRunEnd> WriteFromAsync(INatsJSConsumer consumer, CancellationToken stoppingToken)
    {
        while (_pacer.Paced)
        {
            await FetchPacedAsync(consumer, stoppingToken);
        }

        // A pace set while the consume runs cancels it (RefreshPaceAsync). Set before a peak, when the writer has
        // caught up, that loses nothing; messages a busy consume had pulled ahead come back after the ack wait.
        using (var consume = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken))
        {
            Volatile.Write(ref _consume, consume);
            try
            {
                await foreach (var message in consumer.ConsumeAsync<byte[]>(opts: new NatsJSConsumeOpts { MaxMsgs = 1000 }, cancellationToken: consume.Token))
                {
                    await _inFlight.WaitAsync(consume.Token);
                    _ = WriteAsync(message);
                }
            }
            catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested && _pacer.Paced)
            {
                return ConsumerRunEnd.Reattach;
            }
            finally
            {
                Volatile.Write(ref _consume, null);
            }
        }

        // The consume ended without cancellation (the consumer was deleted under us): attached again, read paced at
        // once if a pace came meanwhile, otherwise after a pause.
        return _pacer.Paced ? ConsumerRunEnd.Reattach : ConsumerRunEnd.Ended;
    }

    /// <summary>One turn of the paced writer: take what is there, up to a few messages, once the budget allows.</summary>
    private async Task FetchPacedAsync(INatsJSConsumer consumer, CancellationToken stoppingToken)
    {
        // Waited in slices, so a pace raised or lifted meanwhile takes effect within one.
        if (_pacer.Wait is { Ticks: > 0 } wait)
        {
            await Task.Delay(wait < PacedPoll ? wait : PacedPoll, stoppingToken);
            return;
        }

        var fetched = 0;
        await foreach (var message in consumer.FetchNoWaitAsync<byte[]>(new NatsJSFetchOpts { MaxMsgs = PacedFetch }, cancellationToken: stoppingToken))
        {
            fetched++;
            await _inFlight.WaitAsync(stoppingToken);
            _ = WriteAsync(message);
        }

        if (fetched == 0)
        {
            await Task.Delay(PacedPoll, stoppingToken);
        }
    }

    private async Task WriteAsync(INatsJSMsg<byte[]> message)
    {
        try
        {
            DeductionRecord[] records;
            try
            {
                records = PipelineJson.ReadDeductions(message.Data ?? []);
            }
            catch (JsonException ex)
            {
                await DeadLetterMessageAsync(message, DeadLetterReason.Unreadable, "unreadable: " + ex.Message);
                return;
            }

            _pacer.Charge(records.Length);

            // A record the schema refuses goes to the dead letters on its own; the rest of its transaction is written.
            var valid = new List<DeductionRecord>(records.Length);
            var dead = new List<(DeductionRecord Record, string Kind, string Reason)>();
            foreach (var record in records)
            {
                try
                {
                    InventorySql.Check(record);
                    valid.Add(record);
                }
                catch (ArgumentException ex)
                {
                    dead.Add((record, DeadLetterReason.Unreadable, "unreadable: " + ex.Message));
                }
            }

            _metrics.PipelineStageReached(PipelineStage.Writer, valid);

            var written = valid.Count == 0 ? [] : _committer.Submit(valid);
            var failed = new List<DeductionRecord>();
            Exception? failure = null;
            for (var i = 0; i < written.Count; i++)
            {
                try
                {
                    await written[i];
                    _metrics.PipelineLag(_time.GetUtcNow().ToUnixTimeMilliseconds() - valid[i].CommittedAtMs);
                }
                catch (InventoryDriftException ex)
                {
                    // This order alone: the orders of its group that fit, of this message and of others, are stored.
                    dead.Add((valid[i], DeadLetterReason.Drift, ex.Message));
                }
                catch (Exception ex)
                {
                    failure ??= ex;
                    failed.Add(valid[i]);
                }
            }

            if (failure is not null)
            {
                var delivery = message.Metadata?.NumDelivered ?? 0;
                // A database that is down or restarting is waited out, however long: dead-lettering an
                // acknowledged order because MySQL was away would lose it from MySQL. Only errors that retrying
                // cannot cure count towards the limit.
                if (delivery < MaxDeliveries || IsOutage(failure))
                {
                    // The whole message comes back: its stored orders are ignored then, and its dead letters (if
                    // any) are found again and sent once it is settled.
                    PipelineLog.WriteFailed(_logger, failure, failed[0].OrderId, failed[0].Sku, delivery, RetryDelay);
                    await message.NakAsync(new AckOpts { NakDelay = RetryDelay });
                    return;
                }

                dead.AddRange(failed.Select(r => (r, DeadLetterReason.Failed, $"failed {delivery} times: {failure.Message}")));
            }

            foreach (var (record, kind, reason) in dead)
            {
                await DeadLetterRecordAsync(message, record, kind, reason);
            }

            await message.AckAsync();
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
        MySqlTransactions.IsTransient(ex) || ex is MySqlConnector.MySqlException { IsTransient: true } || ex.InnerException is System.Net.Sockets.SocketException
        || ex is MySqlConnector.MySqlException { ErrorCode: MySqlConnector.MySqlErrorCode.UnableToConnectToHost };

    /// <summary>A message nothing can be read from goes to the dead letters as it came.</summary>
    private async Task DeadLetterMessageAsync(INatsJSMsg<byte[]> message, string kind, string reason)
    {
        await PublishDeadLetterAsync(message, message.Data ?? [], messageId: null, kind, reason);
        await message.AckTerminateAsync();
    }

    /// <summary>
    /// One order of a message goes to the dead letters on its own (as a single-order message, which a repair could
    /// publish again). Its id makes a second copy, after a redelivery, a duplicate JetStream drops.
    /// </summary>
    private Task DeadLetterRecordAsync(INatsJSMsg<byte[]> message, DeductionRecord record, string kind, string reason) =>
        PublishDeadLetterAsync(message, PipelineJson.Serialize(record), $"dead.{record.OrderId}", kind, reason);

    private async Task PublishDeadLetterAsync(INatsJSMsg<byte[]> message, byte[] payload, string? messageId, string kind, string reason)
    {
        var sequence = message.Metadata?.Sequence.Stream ?? 0;
        var headers = new NatsHeaders { ["FlashSale-Reason"] = reason, ["FlashSale-Original-Subject"] = message.Subject };
        var ack = await _nats.JetStream.PublishAsync(_nats.Topology.DeadLetter("orders"), payload, headers: headers,
            opts: messageId is null ? null : new NatsJSPubOpts { MsgId = messageId });
        // Not EnsureSuccess: it throws on a duplicate, which here means the copy is already there.
        if (ack.Error is { } error)
        {
            throw new NatsJSApiException(error);
        }

        if (!ack.Duplicate)
        {
            _metrics.DeadLetter(kind);
            PipelineLog.DeadLettered(_logger, sequence, reason);
        }
    }

    public override void Dispose()
    {
        _inFlight.Dispose();
        base.Dispose();
    }
}
