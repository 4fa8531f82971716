using System.Text.Json;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using OrleansFlashSale.Messaging;

namespace OrleansFlashSale.Grains;

/// <summary>The JetStream side of the reconciliation: side-stream counts, the writer's backlog, republishing.</summary>
public sealed partial class ReconciliationGrain
{
    private const string WriterConsumer = "orders-writer";

    // Reading a side stream's payloads to count per SKU is cheap while it is small, which it is when healthy.
    private const int MaxMessagesReadPerStream = 10_000;

    private async Task<PubAckResponse> PublishAsync(OutgoingMessage message)
    {
        var ack = await WithNatsDeadlineAsync(_nats.Options.OperationTimeout, "store a republished order",
            ct => _nats.JetStream.PublishAsync(message.Subject, message.Payload, opts: new NatsJSPubOpts { MsgId = message.MessageId }, cancellationToken: ct).AsTask());
        if (ack.Error is { } error)
        {
            throw new NatsJSApiException(error);
        }

        return ack;
    }

    private Task<PipelineMessageCounts> ReadMessagesAsync(string sku) =>
        WithNatsDeadlineAsync(ReadCountsBudget, "read the message counts", async ct =>
        {
            await _nats.EnsureStreamsAsync(ct);
            var t = _nats.Topology;
            var halfTask = CountAsync(t.HalfStream, sku, ct);
            var deadTask = CountAsync(t.DeadLetterStream, sku, ct);
            var checkMaxTask = CountAsync(t.CheckMaxStream, sku, ct);
            var writerTask = WriterPendingAsync(ct);
            await Task.WhenAll(halfTask, deadTask, checkMaxTask, writerTask);
            var (half, dead, checkMax) = (await halfTask, await deadTask, await checkMaxTask);
            return new PipelineMessageCounts(half.Total, half.ForSku, dead.Total, dead.ForSku, checkMax.Total, checkMax.ForSku,
                await writerTask, half.PerSku && dead.PerSku && checkMax.PerSku);
        });

    /// <summary>
    /// Runs a NATS operation of verify with a deadline. NATS.Net waits through a disconnection for as long as it
    /// lasts; verify answers instead, with a NATS failure the gateway turns into 503, well inside the caller's own
    /// timeout (the command line gives up after 30 s).
    /// </summary>
    private async Task<T> WithNatsDeadlineAsync<T>(TimeSpan budget, string what, Func<CancellationToken, Task<T>> operation)
    {
        using var deadline = new CancellationTokenSource(budget);
        try
        {
            return await operation(deadline.Token);
        }
        catch (OperationCanceledException ex) when (deadline.IsCancellationRequested)
        {
            ReconciliationLog.NatsTimedOut(_logger, ex, this.GetPrimaryKeyLong(), what, budget);
            throw new DependencyUnavailableException("nats", nameof(TimeoutException), $"NATS did not {what} within {budget.TotalSeconds:0.#} s.");
        }
    }

    /// <summary>Three JetStream operations' worth: stream info, then reading up to three streams side by side.</summary>
    private TimeSpan ReadCountsBudget => _nats.Options.OperationTimeout * 3;

    private async Task<long> WriterPendingAsync(CancellationToken ct)
    {
        try
        {
            var consumer = await _nats.JetStream.GetConsumerAsync(_nats.Topology.DeductionsStream, WriterConsumer, ct);
            return (long)consumer.Info.NumPending + consumer.Info.NumAckPending;
        }
        catch (NatsJSApiException ex) when (ex.Error.Code == 404)
        {
            // No writer has started yet: everything in the stream is pending.
            var stream = await _nats.JetStream.GetStreamAsync(_nats.Topology.DeductionsStream, cancellationToken: ct);
            return (long)stream.Info.State.Messages;
        }
    }

    /// <summary>Messages in a stream overall, and those whose payload names <paramref name="sku"/> when few enough to read.</summary>
    private async Task<(long Total, long ForSku, bool PerSku)> CountAsync(string streamName, string sku, CancellationToken ct)
    {
        var stream = await _nats.JetStream.GetStreamAsync(streamName, cancellationToken: ct);
        var total = (long)stream.Info.State.Messages;
        if (total == 0)
        {
            return (0, 0, true);
        }

        if (total > MaxMessagesReadPerStream)
        {
            return (total, total, false);
        }

        // An ordered consumer is ephemeral and server-side cheap; it reads what is there now and goes away.
        var consumer = await _nats.JetStream.CreateOrderedConsumerAsync(streamName, cancellationToken: ct);
        var lastSequence = stream.Info.State.LastSeq;
        var (read, forSku) = (0L, 0L);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        try
        {
            await foreach (var message in consumer.ConsumeAsync<byte[]>(cancellationToken: timeout.Token))
            {
                read++;
                if (SkuOf(message.Data) == sku)
                {
                    forSku++;
                }

                // The last sequence may itself have been deleted (resolved half messages are), hence the count too.
                if (read >= total || (message.Metadata?.Sequence.Stream ?? ulong.MaxValue) >= lastSequence)
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            // Messages removed while reading (half messages resolve all the time): what was read is the answer.
        }

        return (total, forSku, true);
    }

    /// <summary>The <c>sku</c> member of a JSON payload (deduction records and half payloads both carry one).</summary>
    private static string? SkuOf(byte[]? data)
    {
        if (data is null || data.Length == 0)
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(data);
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.NameEquals("sku") || property.NameEquals("Sku"))
                {
                    return property.Value.GetString();
                }
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // Unreadable payloads belong to no SKU; the overall count still shows them.
        }

        return null;
    }
}
