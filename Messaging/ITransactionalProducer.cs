namespace OrleansFlashSale.Messaging;

/// <summary>
/// RocketMQ's transactional-message protocol, transport-neutral: send a half message, run the local transaction, then
/// commit (publish the transaction's messages) or roll back. A half message left behind by a crash is resolved by the
/// transport's check-back through <see cref="ITransactionChecker"/>.
/// </summary>
/// <remarks>
/// Every method may be retried: a half message sent twice with one transaction id is stored once, committed messages
/// are deduplicated by <see cref="OutgoingMessage.MessageId"/>, and committing or rolling back a half message that is
/// already gone is not an error. A transport that commits the half message itself (RocketMQ) would carry the messages
/// in the half message's payload.
/// </remarks>
public interface ITransactionalProducer
{
    /// <summary>Stores a half message that no business consumer sees. Returns once the broker has stored it.</summary>
    Task<HalfMessageHandle> SendHalfAsync(string transactionId, string subject, ReadOnlyMemory<byte> payload, CancellationToken ct);

    /// <summary>Publishes <paramref name="messages"/> (each stored once), then removes the half message.</summary>
    Task CommitAsync(HalfMessageHandle half, IReadOnlyList<OutgoingMessage> messages, CancellationToken ct);

    /// <summary>Removes the half message; nothing is published.</summary>
    Task RollbackAsync(HalfMessageHandle half, CancellationToken ct);
}
