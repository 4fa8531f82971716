namespace OrleansFlashSale;

/// <summary>How callers address the grains of a sale.</summary>
public static class GrainKeys
{
    public static IProductGrain Product(this IGrainFactory grains, string sku) => grains.GetGrain<IProductGrain>(sku);

    public static IBucketGrain Bucket(this IGrainFactory grains, string sku, int index) =>
        grains.GetGrain<IBucketGrain>(index, sku);

    public static IQuotaGrain Quota(this IGrainFactory grains, string sku, int shard) =>
        grains.GetGrain<IQuotaGrain>(shard, sku);

    /// <summary>The quota shard of a user: fixed for the life of the sale.</summary>
    public static int QuotaShard(string userId, int quotaShards) => StableHash.Bucket(userId, quotaShards);
}
