using System.Globalization;
using Microsoft.Extensions.Logging;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace OrleansFlashSale.Messaging;

/// <summary>
/// <see cref="ITransactionalProducer"/> on JetStream. A half message is a message in the half stream, which only the
/// check-back reads; commit publishes the transaction's messages with their ids as <c>Nats-Msg-Id</c>, then deletes
/// the half message by sequence; rollback only deletes it.
/// </summary>
public sealed class JetStreamTransactionalProducer : ITransactionalProducer
{
    internal const string ByProducer = "producer";
    internal const string ByCheck = "check";

    // JetStream API error codes for "that sequence is not in the stream" (10043: below the last sequence, 10057 with
    // "stream store EOF" or "no message found": past it or already removed).
    private const int SequenceNotFound = 10043;
    private const int MessageDeleteFailed = 10057;

    private readonly JetStreamConnection _nats;
    private readonly MessagingMetrics _metrics;
    private readonly ILogger<JetStreamTransactionalProducer> _logger;

    public JetStreamTransactionalProducer(JetStreamConnection nats, MessagingMetrics metrics, ILogger<JetStreamTransactionalProducer> logger)
    {
        _nats = nats;
        _metrics = metrics;
        _logger = logger;
    }

    private JetStreamTopology Topology => _nats.Topology;

    public async Task<HalfMessageHandle> SendHalfAsync(string transactionId, string subject, ReadOnlyMemory<byte> payload, CancellationToken ct)
    {
        MessageNames.RequireId(transactionId, nameof(transactionId));
        MessageNames.RequireSubject(Topology, subject, nameof(subject));
        try
        {
            await _nats.EnsureStreamsAsync(ct);
            var headers = new NatsHeaders
            {
                [TransactionHeaders.TransactionId] = transactionId,
                [TransactionHeaders.Subject] = subject,
            };

            // The transaction id as message id: a retried send stores one half message and answers with its sequence.
            // ExpectedStream guards against another stream that captures the same subject.
            var ack = await _nats.JetStream.PublishAsync(
                Topology.HalfSubject,
                payload,
                opts: new NatsJSPubOpts { MsgId = transactionId, ExpectedStream = Topology.HalfStream },
                headers: headers,
                cancellationToken: ct);
            EnsureStored(ack, transactionId, Topology.HalfSubject);
            return new HalfMessageHandle(transactionId, subject, ack.Seq.ToString(CultureInfo.InvariantCulture), TimeProvider.System.GetUtcNow());
        }
        catch (Exception ex) when (ex is not OperationCanceledException && Failed("send-half"))
        {
            throw;
        }
    }

    public Task CommitAsync(HalfMessageHandle half, IReadOnlyList<OutgoingMessage> messages, CancellationToken ct) =>
        CommitAsync(half, messages, ByProducer, ct);

    public Task RollbackAsync(HalfMessageHandle half, CancellationToken ct) => RollbackAsync(half, ByProducer, ct);

    internal async Task CommitAsync(HalfMessageHandle half, IReadOnlyList<OutgoingMessage> messages, string by, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var sequence = SequenceOf(half);
        foreach (var message in messages)
        {
            ArgumentNullException.ThrowIfNull(message, nameof(messages));
            MessageNames.RequireId(message.MessageId, nameof(messages));
            MessageNames.RequireSubject(Topology, message.Subject, nameof(messages));
        }

        try
        {
            await _nats.EnsureStreamsAsync(ct);

            // Publish before deleting: a crash in between leaves the half message, and the check-back publishes the
            // same ids again, which JetStream drops inside the duplicate window. The other order could lose them.
            // The messages are independent (one order each), so they go out together and their acks are awaited
            // together: one round trip for the transaction instead of one per order.
            var publishes = new Task[messages.Count];
            for (var i = 0; i < messages.Count; i++)
            {
                publishes[i] = PublishOneAsync(messages[i], half.TransactionId, ct);
            }

            await Task.WhenAll(publishes);
            await DeleteHalfAsync(sequence, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException && Failed("commit"))
        {
            throw;
        }

        _metrics.TransactionResolved("commit", by);
    }

    private async Task PublishOneAsync(OutgoingMessage message, string transactionId, CancellationToken ct)
    {
        var ack = await _nats.JetStream.PublishAsync(
            message.Subject,
            message.Payload,
            opts: new NatsJSPubOpts { MsgId = message.MessageId },
            headers: new NatsHeaders { [TransactionHeaders.TransactionId] = transactionId },
            cancellationToken: ct);
        EnsureStored(ack, message.MessageId, message.Subject);
    }

    internal async Task RollbackAsync(HalfMessageHandle half, string by, CancellationToken ct)
    {
        var sequence = SequenceOf(half);
        try
        {
            await DeleteHalfAsync(sequence, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException && Failed("rollback"))
        {
            throw;
        }

        _metrics.TransactionResolved("rollback", by);
    }

    /// <summary>Removes a half message; one that is already gone (resolved by someone else) is not an error.</summary>
    internal async Task DeleteHalfAsync(ulong sequence, CancellationToken ct)
    {
        try
        {
            // NoErase: the payload need not be overwritten on disk, which would cost a write per transaction.
            await _nats.JetStream.DeleteMessageAsync(Topology.HalfStream, new StreamMsgDeleteRequest { Seq = sequence, NoErase = true }, ct);
        }
        catch (NatsJSApiException ex) when (IsNotFound(ex.Error))
        {
            MessagingLog.HalfAlreadyGone(_logger, sequence, Topology.HalfStream, ex.Error.Description ?? ex.Error.ErrCode.ToString(CultureInfo.InvariantCulture));
        }
    }

    internal static ulong SequenceOf(HalfMessageHandle half)
    {
        ArgumentNullException.ThrowIfNull(half);
        return ulong.TryParse(half.Receipt, NumberStyles.None, CultureInfo.InvariantCulture, out var sequence) && sequence > 0
            ? sequence
            : throw new ArgumentException($"'{half.Receipt}' is not a receipt of the JetStream half stream", nameof(half));
    }

    private static bool IsNotFound(ApiError error) =>
        error.ErrCode == SequenceNotFound
        || (error.ErrCode == MessageDeleteFailed && error.Description is { } text
            && (text.Contains("not found", StringComparison.OrdinalIgnoreCase)
                || text.Contains("no message", StringComparison.OrdinalIgnoreCase)
                || text.Contains("EOF", StringComparison.Ordinal)));

    /// <summary>A duplicate is success here (that is what the message id is for); EnsureSuccess would throw on it.</summary>
    private void EnsureStored(PubAckResponse ack, string messageId, string subject)
    {
        if (ack.Error is { } error)
        {
            throw new NatsJSApiException(error);
        }

        if (ack.Duplicate)
        {
            MessagingLog.DuplicateDropped(_logger, messageId, subject);
        }
    }

    /// <summary>Counts a failure on its way to the caller, who owns the exception.</summary>
    private bool Failed(string operation)
    {
        _metrics.NatsFailure(operation);
        return false;
    }
}
