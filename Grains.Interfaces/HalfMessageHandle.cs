namespace OrleansFlashSale;

/// <summary>
/// What the transactional producer's <c>SendHalfAsync</c> returns and its <c>CommitAsync</c> and <c>RollbackAsync</c>
/// take. A contract: Orleans-serializable, so a grain keeps it across calls and hands it to another (the stream
/// bridge) in any silo.
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
