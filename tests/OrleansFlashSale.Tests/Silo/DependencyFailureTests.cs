using OrleansFlashSale.Redis;

namespace OrleansFlashSale.Tests;

/// <summary>A driver exception inside a grain reaches the caller as a serialisable exception naming the store.</summary>
[Collection(ClusterCollection.Name)]
public sealed class DependencyFailureTests(ClusterFixture fixture)
{
    [Fact]
    public async Task A_Redis_error_inside_a_grain_reaches_the_caller_as_DependencyUnavailableException()
    {
        var sale = await fixture.CreateSaleAsync("dep-redis", stock: 10, buckets: 1, perUserLimit: 1);
        // The bucket's stock key turned into a hash: Redis answers its GET with WRONGTYPE, which StackExchange.Redis
        // throws as a RedisServerException inside the bucket grain. That type has no Orleans codec.
        var db = fixture.Redis.GetDatabase();
        var key = RedisKeys.Stock(sale.Sku, 0);
        await db.KeyDeleteAsync(key);
        await db.HashSetAsync(key, "not", "a number");

        var error = await Assert.ThrowsAsync<DependencyUnavailableException>(() => fixture.Client.Bucket(sale.Sku, 0).GetRemainingAsync(refresh: true));

        Assert.Equal("redis", error.Dependency);
        Assert.Equal("StackExchange.Redis.RedisServerException", error.OriginalType);
        Assert.Contains("WRONGTYPE", error.Message, StringComparison.Ordinal);
    }
}
