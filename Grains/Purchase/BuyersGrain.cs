using Orleans.Concurrency;
using OrleansFlashSale.Redis;

namespace OrleansFlashSale.Grains;

/// <summary>
/// Reads the shards' buyers in one fan-out: the fields of their unit counter hashes, which purchase.lua and
/// reserve.lua add and finalize.lua removes once a user holds none. A stateless worker: it keeps nothing, and a
/// sold-out sale's gateways may ask at the same moment.
/// </summary>
[StatelessWorker]
public sealed class BuyersGrain(RedisConnection redis) : Grain, IBuyersGrain
{
    public async Task<string[]> GetBuyersAsync(int quotaShards)
    {
        if (quotaShards is < 1 or > SaleRules.MaxQuotaShards)
        {
            throw new ArgumentOutOfRangeException(nameof(quotaShards), quotaShards, $"quota shards must be 1..{SaleRules.MaxQuotaShards}");
        }

        var sku = this.GetPrimaryKeyString();
        var db = await redis.GetDatabaseAsync();
        var shards = await Task.WhenAll(Enumerable.Range(0, quotaShards).Select(shard => db.HashKeysAsync(RedisKeys.Units(sku, shard))));
        return [.. shards.SelectMany(members => members).Select(member => member.ToString())];
    }
}
