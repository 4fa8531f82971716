namespace OrleansFlashSale;

/// <summary>One purchase handed to a bucket; the order id was fixed when the user's quota was reserved.</summary>
[GenerateSerializer, Immutable, Alias("flashsale.DeductRequest")]
public sealed record DeductRequest(
    [property: Id(0)] string OrderId,
    [property: Id(1)] string UserId,
    [property: Id(2)] string RequestId,
    [property: Id(3)] int Quantity);

public enum DeductOutcome
{
    Deducted,

    /// <summary>This order id was already deducted in this bucket (a retry).</summary>
    AlreadyDeducted,

    /// <summary>Fewer units left in this bucket than asked for.</summary>
    Insufficient,

    /// <summary>
    /// A replay of the same request already settled that this order id was not deducted here
    /// (<see cref="IBucketGrain.VoidOrderAsync"/>), so it never will be; the replay finishes the purchase.
    /// </summary>
    Voided,

    /// <summary>
    /// Only in <see cref="IBucketGrain.DeductManyAsync"/>: the bucket's queue or script call failed, so the order
    /// may or may not have been deducted (a single <see cref="IBucketGrain.DeductAsync"/> throws instead).
    /// </summary>
    Unknown,
}

[GenerateSerializer, Immutable, Alias("flashsale.DeductResult")]
public sealed record DeductResult(
    [property: Id(0)] DeductOutcome Outcome,
    [property: Id(1)] long Remaining);

/// <summary>
/// Where a cancelled or expired order's units went. <see cref="MovedTo"/> is -1 when they are in the bucket asked
/// (now or by an earlier call); otherwise re-bucketing removed that bucket and the units go to
/// <see cref="MovedTo"/> instead, or, when that is -2, the bucket was removed and the caller named no live bucket.
/// </summary>
[GenerateSerializer, Immutable, Alias("flashsale.ReturnResult")]
public sealed record ReturnResult(
    [property: Id(0)] int MovedTo,
    [property: Id(1)] long Remaining)
{
    public const int Here = -1;

    public const int RemovedNoTarget = -2;

    public bool Returned => MovedTo == Here;
}

/// <summary>What a quota shard needs to route a purchase: the layout and which buckets still have stock.</summary>
[GenerateSerializer, Immutable, Alias("flashsale.BucketRouting")]
public sealed record BucketRouting(
    [property: Id(0)] long LayoutVersion,
    [property: Id(1)] int BucketCount,
    [property: Id(2)] int[] WithStock,
    [property: Id(3)] bool SoldOut,
    [property: Id(4)] int HighestBucketCount);

[GenerateSerializer, Immutable, Alias("flashsale.BucketStatus")]
public sealed record BucketStatus(
    [property: Id(0)] int Index,
    [property: Id(1)] long Remaining);

[GenerateSerializer, Immutable, Alias("flashsale.SaleStatus")]
public sealed record SaleStatus(
    [property: Id(0)] SaleDefinition Sale,
    [property: Id(1)] long Remaining,
    [property: Id(2)] long Sold,
    [property: Id(3)] string State,
    [property: Id(4)] IReadOnlyList<BucketStatus> Buckets,
    [property: Id(5)] long LayoutVersion,
    [property: Id(6)] long InTransfer);

public static class SaleStates
{
    public const string Scheduled = "scheduled";
    public const string Active = "active";
    public const string SoldOut = "sold_out";
    public const string Ended = "ended";
}

public enum RebucketOutcome
{
    Done,
    Unchanged,
    UnknownSale,
    Invalid,
}

[GenerateSerializer, Immutable, Alias("flashsale.RebucketResult")]
public sealed record RebucketResult(
    [property: Id(0)] RebucketOutcome Outcome,
    [property: Id(1)] SaleStatus? Status,
    [property: Id(2)] string? Error);
