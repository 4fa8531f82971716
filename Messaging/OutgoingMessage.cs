namespace OrleansFlashSale.Messaging;

/// <summary>
/// A message a transaction publishes when it commits. <see cref="MessageId"/> is the broker's deduplication key: the
/// producer and the check-back may both publish it, and the broker must keep one copy.
/// </summary>
public sealed record OutgoingMessage(string MessageId, string Subject, ReadOnlyMemory<byte> Payload);
