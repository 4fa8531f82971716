using Orleans.Concurrency;

namespace OrleansFlashSale;

/// <summary>One per SKU: owns the sale definition (persisted) and the bucket layout.</summary>
[Alias("flashsale.IProductGrain")]
public interface IProductGrain : IGrainWithStringKey
{
    [Alias("Create")]
    Task<CreateSaleResult> CreateAsync(SaleDefinition sale);

    [Alias("GetDefinition")]
    Task<SaleDefinition?> GetDefinitionAsync();

    /// <summary>
    /// The most buckets the sale ever had (0 for an unknown sale): buckets past the current count may still hold
    /// stock keys, order markers and log entries, so a reconciliation reads all of them.
    /// </summary>
    [Alias("GetHighestBucketCount")]
    Task<int> GetHighestBucketCountAsync();

    /// <summary>Remaining stock per bucket; <paramref name="refresh"/> reads Redis instead of the buckets' caches.</summary>
    [Alias("GetStatus")]
    Task<SaleStatus?> GetStatusAsync(bool refresh);

    /// <summary>
    /// The current layout. <paramref name="seenEmpty"/> lists buckets the caller just found empty, so the answer
    /// does not send it back to them.
    /// </summary>
    [Alias("GetRouting")]
    Task<BucketRouting?> GetRoutingAsync(int[] seenEmpty);

    /// <summary>
    /// Ends the sale now (a sale with an earlier end keeps it) and gives its per-user counters and request records,
    /// kept without a TTL while the sale had no end, the TTL of a closed sale: the payment timeout plus the record
    /// retention. Safe to call again, for instance after a crash half-way.
    /// </summary>
    [Alias("Close"), ResponseTimeout("00:05:00")]
    Task<CloseSaleResult> CloseAsync();

    [Alias("Rebucket")]
    Task<RebucketResult> RebucketAsync(int buckets);

    /// <summary>A bucket tells its product it ran dry; one-way so a bucket never waits on its product.</summary>
    [OneWay, Alias("BucketEmptied")]
    Task BucketEmptiedAsync(int index);

    /// <summary>A bucket got units back (a cancelled or expired order); one-way for the same reason.</summary>
    [OneWay, Alias("BucketRefilled")]
    Task BucketRefilledAsync(int index);
}
