using StackExchange.Redis;

namespace OrleansFlashSale.Redis;

/// <summary>
/// Gives a closed sale's per-user counters and request records (two hashes per quota shard) a TTL. They were written without one
/// while the sale had no end (<see cref="SaleLifetime"/>), and no index lists them, so this scans every primary for
/// the sale's hash tags. Keys that already have a TTL keep it (EXPIRE NX), and the stock keys and deduction logs are
/// left alone: verify and the order pipeline still read them.
/// </summary>
public static class SaleRecordExpiry
{
    private const int PageSize = 1000;

    /// <returns>How many keys got a TTL.</returns>
    public static async Task<long> ExpireAsync(IConnectionMultiplexer redis, string sku, TimeSpan ttl, CancellationToken cancellationToken)
    {
        // A SKU is [A-Za-z0-9._-], so it holds no glob character and no ':' another SKU's tag could share.
        var pattern = $"{{fs:{sku}:b*}}:*";
        long expired = 0;
        var db = redis.GetDatabase();
        foreach (var server in redis.GetServers().Where(s => s.IsConnected && !s.IsReplica))
        {
            var batch = new List<Task<bool>>(PageSize);
            await foreach (var key in server.KeysAsync(pattern: pattern, pageSize: PageSize).WithCancellation(cancellationToken))
            {
                if (IsSaleRecord(key.ToString()))
                {
                    batch.Add(db.KeyExpireAsync(key, ttl, ExpireWhen.HasNoExpiry));
                }

                if (batch.Count == PageSize)
                {
                    expired += (await Task.WhenAll(batch)).Count(e => e);
                    batch.Clear();
                }
            }

            expired += (await Task.WhenAll(batch)).Count(e => e);
        }

        return expired;
    }

    /// <summary>A shard's unit counters ("}:units") or request records ("}:requests").</summary>
    internal static bool IsSaleRecord(string key)
    {
        var end = key.IndexOf("}:", StringComparison.Ordinal);
        if (end < 0)
        {
            return false;
        }

        var rest = key.AsSpan(end + 2);
        return rest.SequenceEqual("units") || rest.SequenceEqual("requests");
    }
}
