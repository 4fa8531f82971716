namespace OrleansFlashSale;

/// <summary>
/// One slice of a SKU's stock. Key: the bucket index with the SKU as key extension. The stock itself lives in
/// Redis; the grain only caches it.
/// </summary>
[Alias("flashsale.IBucketGrain")]
public interface IBucketGrain : IGrainWithIntegerCompoundKey
{
    /// <summary>
    /// Purchases by users whose quota shard is this bucket, answered in the same order. The common case (this bucket
    /// has stock) is one script for the whole call; the rest (this bucket is dry, a database sale, a request still
    /// being settled) go on to the user's quota grain. A purchase whose outcome is unknown is answered
    /// <see cref="PurchaseOutcome.Unavailable"/>, and retrying it with the same request id is safe.
    /// </summary>
    [Alias("PurchaseMany")]
    Task<PurchaseReply[]> PurchaseManyAsync(PurchaseRequest[] requests);

    /// <summary>The product changed the sale's definition (it was closed): purchases from now on see the new one.</summary>
    [Alias("SaleChanged")]
    Task SaleChangedAsync(SaleDefinition sale);

    [Alias("Deduct")]
    Task<DeductResult> DeductAsync(DeductRequest request);

    /// <summary>
    /// Several purchases in one grain call, answered in the same order; a purchase whose outcome the bucket cannot
    /// know is answered <see cref="DeductOutcome.Unknown"/> instead of failing the whole call.
    /// </summary>
    [Alias("DeductMany")]
    Task<DeductResult[]> DeductManyAsync(DeductRequest[] requests);

    /// <summary>Whether <paramref name="orderId"/> was deducted here (used to settle an unknown outcome).</summary>
    [Alias("HasOrder")]
    Task<bool> HasOrderAsync(string orderId);

    /// <summary>
    /// True when <paramref name="orderId"/> was deducted here; otherwise makes sure it never will be (a deduction of
    /// it still on its way is refused as <see cref="DeductOutcome.Voided"/>) and answers false. Atomic in Redis, so
    /// a replay that gets false from every bucket may release or re-buy without racing its own first attempt.
    /// </summary>
    [Alias("VoidOrder")]
    Task<bool> VoidOrderAsync(string orderId);

    [Alias("GetRemaining")]
    Task<long> GetRemainingAsync(bool refresh);

    /// <summary>
    /// Sets the bucket's stock when a sale is created; a bucket that already has a stock key keeps it (initialising
    /// twice never restocks).
    /// </summary>
    [Alias("Initialize")]
    Task InitializeAsync(long stock);

    /// <summary>Takes up to <paramref name="amount"/> units out (all when negative); idempotent per transfer id.</summary>
    [Alias("Take")]
    Task<long> TakeAsync(string transferId, long amount);

    /// <summary>
    /// Gives a cancelled or expired order's units back; idempotent per order. A bucket that re-bucketing removed
    /// takes none: the units go to <paramref name="liveBucket"/> (pass -1 when not known yet, and the answer says
    /// so), and the first call that names one fixes it for every retry of this order.
    /// </summary>
    [Alias("ReturnToLive")]
    Task<ReturnResult> ReturnAsync(string orderId, int quantity, int liveBucket);

    /// <summary>Adds units taken from a sibling; idempotent per transfer id.</summary>
    [Alias("Give")]
    Task<long> GiveAsync(string transferId, long amount);
}
