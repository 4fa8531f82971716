using StackExchange.Redis;

namespace OrleansFlashSale.Redis;

/// <summary>One order of the index: where it lives until MySQL has it.</summary>
public sealed record OrderIndexEntry(string OrderId, string Sku, int Bucket, int Quantity, string RequestId, string UserId)
{
    /// <summary>sku|bucket|quantity|requestId|userId: the user id last, since it may contain '|'.</summary>
    public string Value => string.Join('|', Sku, Bucket, Quantity, RequestId, UserId);
}

/// <summary>Writes the order index (<see cref="RedisKeys.OrderIndex"/>): one HSET and one EXPIRE per second-hash.</summary>
public static class OrderIndexWrites
{
    public static Task WriteAsync(IDatabase db, IEnumerable<OrderIndexEntry> entries, TimeSpan ttl)
    {
        var writes = new List<Task>(2);
        // A batch's ids are made within a few milliseconds, so this is nearly always one group.
        foreach (var group in entries.GroupBy(e => RedisKeys.OrderIndex(e.OrderId)))
        {
            // Every id this project makes is a version 7 UUID; one that is not could not be found by id either.
            if (group.Key is not { } key)
            {
                continue;
            }

            writes.Add(db.HashSetAsync(key, [.. group.Select(e => new HashEntry(e.OrderId, e.Value))]));
            // Pushed back by every write: the hash lives as long as its youngest order needs.
            writes.Add(db.KeyExpireAsync(key, ttl));
        }

        return Task.WhenAll(writes);
    }
}
