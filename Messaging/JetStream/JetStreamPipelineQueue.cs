using System.Text.Json;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace OrleansFlashSale.Messaging;

/// <summary><see cref="IPipelineQueue"/> on JetStream: the streams of <see cref="JetStreamTopology"/>.</summary>
public sealed class JetStreamPipelineQueue(JetStreamConnection nats) : IPipelineQueue
{
    // Reading a side stream's payloads to count per SKU is cheap while it is small, which it is when healthy.
    private const int MaxMessagesReadPerStream = 10_000;

    public TimeSpan OperationTimeout => nats.Options.OperationTimeout;

    public string DeductionsSubject(string sku) => nats.Topology.Deductions(sku);

    public string DeadLetterName => nats.Topology.DeadLetterStream;

    public string CheckMaxName => nats.Topology.CheckMaxStream;

    public async Task<bool> PublishAsync(OutgoingMessage message, CancellationToken ct)
    {
        await nats.EnsureStreamsAsync(ct);
        var ack = await nats.JetStream.PublishAsync(message.Subject, message.Payload, opts: new NatsJSPubOpts { MsgId = message.MessageId }, cancellationToken: ct);
        if (ack.Error is { } error)
        {
            throw new NatsJSApiException(error);
        }

        return !ack.Duplicate;
    }

    public async Task<PipelineMessageCounts> CountAsync(string sku, CancellationToken ct)
    {
        await nats.EnsureStreamsAsync(ct);
        var t = nats.Topology;
        var halfTask = CountAsync(t.HalfStream, sku, ct);
        var deadTask = CountAsync(t.DeadLetterStream, sku, ct);
        var checkMaxTask = CountAsync(t.CheckMaxStream, sku, ct);
        var writerTask = WriterPendingAsync(ct);
        await Task.WhenAll(halfTask, deadTask, checkMaxTask, writerTask);
        var (half, dead, checkMax) = (await halfTask, await deadTask, await checkMaxTask);
        return new PipelineMessageCounts(half.Total, half.ForSku, dead.Total, dead.ForSku, checkMax.Total, checkMax.ForSku,
            await writerTask, half.PerSku && dead.PerSku && checkMax.PerSku);
    }

    private async Task<long> WriterPendingAsync(CancellationToken ct)
    {
        try
        {
            var consumer = await nats.JetStream.GetConsumerAsync(nats.Topology.DeductionsStream, JetStreamTopology.WriterConsumer, ct);
            return (long)consumer.Info.NumPending + consumer.Info.NumAckPending;
        }
        catch (NatsJSApiException ex) when (ex.Error.Code == 404)
        {
            // No writer has started yet: everything in the stream is pending.
            var stream = await nats.JetStream.GetStreamAsync(nats.Topology.DeductionsStream, cancellationToken: ct);
            return (long)stream.Info.State.Messages;
        }
    }

    /// <summary>Messages in a stream overall, and those whose payload names <paramref name="sku"/> when few enough to read.</summary>
    private async Task<(long Total, long ForSku, bool PerSku)> CountAsync(string streamName, string sku, CancellationToken ct)
    {
        var stream = await nats.JetStream.GetStreamAsync(streamName, cancellationToken: ct);
        var total = (long)stream.Info.State.Messages;
        if (total == 0)
        {
            return (0, 0, true);
        }

        if (total > MaxMessagesReadPerStream)
        {
            return (total, total, false);
        }

        // An ordered consumer is ephemeral and server-side cheap; it reads what is there now and goes away. The fetch
        // does not wait for messages: half messages are removed all the time, and a consume would wait (up to the
        // timeout) for the ones removed between the count and the read.
        var consumer = await nats.JetStream.CreateOrderedConsumerAsync(streamName, cancellationToken: ct);
        var lastSequence = stream.Info.State.LastSeq;
        var (read, forSku) = (0L, 0L);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        try
        {
            await foreach (var message in consumer.FetchNoWaitAsync<byte[]>(new NatsJSFetchOpts { MaxMsgs = (int)total }, cancellationToken: timeout.Token))
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
