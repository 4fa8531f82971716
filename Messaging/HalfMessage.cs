namespace OrleansFlashSale.Messaging;

/// <summary>
/// A half (prepared) message as the check-back hands it to <see cref="ITransactionChecker"/>: stored by the broker,
/// invisible to business consumers, and neither committed nor rolled back by its producer in time.
/// </summary>
/// <param name="TransactionId">The id the producer gave to <see cref="ITransactionalProducer.SendHalfAsync"/>.</param>
/// <param name="Subject">The business subject the producer named; the committed messages usually go there.</param>
/// <param name="Payload">What the producer stored with the half message.</param>
/// <param name="SentAt">When the broker stored the half message (the broker's clock).</param>
/// <param name="CheckCount">
/// Which check this is, from 1. A check lost with a stopped process counts too, so this is a delivery count, not a
/// count of answers the checker gave.
/// </param>
public sealed record HalfMessage(string TransactionId, string Subject, ReadOnlyMemory<byte> Payload, DateTimeOffset SentAt, int CheckCount);

/// <summary>
/// What <see cref="ITransactionalProducer.SendHalfAsync"/> returns and <see cref="ITransactionalProducer.CommitAsync"/>
/// and <see cref="ITransactionalProducer.RollbackAsync"/> take. Serializable, so a grain can keep it across calls.
/// </summary>
/// <param name="Receipt">
/// Where the transport stored the half message, opaque to callers (JetStream: the half stream's sequence; RocketMQ
/// would keep its message id and offset here).
/// </param>
/// <param name="SentAt">When the producer sent it (the producer's clock).</param>
[GenerateSerializer, Immutable, Alias("flashsale.HalfMessageHandle")]
public sealed record HalfMessageHandle(
    [property: Id(0)] string TransactionId,
    [property: Id(1)] string Subject,
    [property: Id(2)] string Receipt,
    [property: Id(3)] DateTimeOffset SentAt);
