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
