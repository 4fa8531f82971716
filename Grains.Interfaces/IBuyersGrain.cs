namespace OrleansFlashSale;

/// <summary>
/// Who holds units in a sale, read from every quota shard's unit counters (the users holding units). Key: the SKU.
/// A gateway that caches the sold-out state asks once per sold-out spell so it can still forward a buyer's replay
/// to the quota grain.
/// </summary>
[Alias("flashsale.IBuyersGrain")]
public interface IBuyersGrain : IGrainWithStringKey
{
    /// <summary>Users holding units in the sale's <paramref name="quotaShards"/> shards (order not significant).</summary>
    [Alias("GetBuyers")]
    Task<string[]> GetBuyersAsync(int quotaShards);
}
