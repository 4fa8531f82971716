using Orleans.Concurrency;

namespace OrleansFlashSale;

/// <summary>
/// Compares what Redis, JetStream and MySQL know about a sale, and optionally re-publishes what the pipeline lost.
/// Stateless: any silo may answer, so call it with key 0.
/// </summary>
[Alias("flashsale.IReconciliationGrain")]
public interface IReconciliationGrain : IGrainWithIntegerKey
{
    /// <summary>
    /// The books of one sale, each MySQL order's Redis proof read too (two GETs per order): what an operator asks
    /// for. Null when no sale exists for <paramref name="sku"/>.
    /// </summary>
    [Alias("Verify")]
    Task<ReconciliationReport?> VerifyAsync(string sku, bool repair);

    /// <summary>
    /// The same books from counts alone, no order read one by one (<see cref="ReconciliationReport.OrdersWithoutProof"/>
    /// is null, <see cref="ReconciliationReport.UnknownToRedis"/> has the count but no ids): cheap enough to poll.
    /// </summary>
    [Alias("Summarize")]
    Task<ReconciliationReport?> SummarizeAsync(string sku);

    /// <summary>SKUs of every sale that has an inventory row in MySQL, sorted.</summary>
    [Alias("ListSkus")]
    Task<string[]> ListSkusAsync();
}

/// <summary>One side-by-side comparison, e.g. <c>redis remaining + live units == stock</c>.</summary>
[GenerateSerializer, Immutable, Alias("flashsale.ReconciliationEquation")]
public sealed record ReconciliationEquation(
    [property: Id(0)] string Text,
    [property: Id(1)] long Left,
    [property: Id(2)] long Right,
    [property: Id(3)] bool Holds);

/// <summary>Units and order count of one <c>orders.status</c>.</summary>
[GenerateSerializer, Immutable, Alias("flashsale.OrderStatusUnits")]
public sealed record OrderStatusUnits(
    [property: Id(0)] string Status,
    [property: Id(1)] long Orders,
    [property: Id(2)] long Units);

/// <summary>A set of order ids: the full count and the first few ids.</summary>
[GenerateSerializer, Immutable, Alias("flashsale.OrderIdList")]
public sealed record OrderIdList(
    [property: Id(0)] long Count,
    [property: Id(1)] string[] OrderIds);

/// <summary>
/// Messages in the JetStream side streams. The <c>ForSku</c> counts are read from the payloads when the stream is
/// small enough (<see cref="PerSku"/>); otherwise they repeat the overall count.
/// </summary>
[GenerateSerializer, Immutable, Alias("flashsale.PipelineMessageCounts")]
public sealed record PipelineMessageCounts(
    [property: Id(0)] long HalfMessages,
    [property: Id(1)] long HalfMessagesForSku,
    [property: Id(2)] long DeadLetters,
    [property: Id(3)] long DeadLettersForSku,
    [property: Id(4)] long CheckMax,
    [property: Id(5)] long CheckMaxForSku,
    [property: Id(6)] long WriterPending,
    [property: Id(7)] bool PerSku);

/// <summary>What a repair did.</summary>
/// <param name="Republished">Deductions published again to the deductions stream.</param>
/// <param name="Trimmed">Redis log entries deleted because their order is in MySQL.</param>
[GenerateSerializer, Immutable, Alias("flashsale.ReconciliationRepair")]
public sealed record ReconciliationRepair(
    [property: Id(0)] int Republished,
    [property: Id(1)] int Trimmed);

/// <summary>
/// The books of one sale as found (before any repair). At rest (nothing of this sale in flight) both equations must
/// hold; <see cref="Drift"/> says something needs an operator or a repair, <see cref="Problems"/> says what.
/// <see cref="OldestUnpersistedAgeMs"/> is the age of the oldest order still in a bucket's Redis log and not yet in
/// MySQL (pending or missing); null when there is none. It is the pipeline's lag as an operator feels it.
/// <see cref="RedisCommittedOrders"/> is how many orders the buckets' scripts ever logged (each log stream's
/// entries-added, which never expires); MySQL holding more orders of a bucket than that is
/// <see cref="UnknownToRedis"/>. Its ids are the orders of such buckets without a Redis proof, so once proofs expired
/// they may name more orders than the count. <see cref="OrdersWithoutProof"/> counts the other orders whose proof
/// is gone (expired with the records' TTL): not drift. Both are null where they do not apply (database mode;
/// proofs in a summary).
/// <see cref="UnitsInRemovedBuckets"/> are units in buckets re-bucketing removed: counted as remaining, yet outside the
/// live layout that overflow and the sold-out view use (a problem when not 0).
/// </summary>
[GenerateSerializer, Immutable, Alias("flashsale.ReconciliationReport")]
public sealed record ReconciliationReport(
    [property: Id(0)] string Sku,
    [property: Id(1)] long Stock,
    [property: Id(2)] int Buckets,
    [property: Id(3)] long RedisRemaining,
    [property: Id(4)] long RedisSold,
    [property: Id(5)] OrderStatusUnits[] MySqlOrders,
    [property: Id(6)] long MySqlLiveUnits,
    [property: Id(7)] long? AvailableStock,
    [property: Id(8)] long InventoryLogRows,
    [property: Id(9)] ReconciliationEquation RedisEquation,
    [property: Id(10)] ReconciliationEquation InventoryEquation,
    [property: Id(11)] OrderIdList PendingInPipeline,
    [property: Id(12)] OrderIdList MissingInMySql,
    [property: Id(13)] OrderIdList UnknownToRedis,
    [property: Id(14)] long UntrimmedLogEntries,
    [property: Id(15)] PipelineMessageCounts Messages,
    [property: Id(16)] bool AtRest,
    [property: Id(17)] bool Drift,
    [property: Id(18)] string[] Problems,
    [property: Id(19)] ReconciliationRepair? Repair,
    [property: Id(20)] long? OldestUnpersistedAgeMs = null,
    [property: Id(21)] long? RedisCommittedOrders = null,
    [property: Id(22)] long? OrdersWithoutProof = null,
    [property: Id(23)] long UnitsInRemovedBuckets = 0);
