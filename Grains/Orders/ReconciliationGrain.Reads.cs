using System.Globalization;
using OrleansFlashSale.Persistence;
using OrleansFlashSale.Redis;
using StackExchange.Redis;

namespace OrleansFlashSale.Grains;

/// <summary>What the reconciliation reads from Redis (MySQL's side is <see cref="IOrderReadStore"/>).</summary>
public sealed partial class ReconciliationGrain
{
    private const int LogPageSize = 1000;

    private async Task<RedisView> ReadRedisAsync(string sku, int buckets)
    {
        var db = await _redis.GetDatabaseAsync();

        // The scripts' clock, not the silo's: log entries carry Redis TIME, and silo clocks may differ (or be fake).
        var time = (RedisResult[])(await db.ExecuteAsync("TIME"))!;
        var nowMs = (long)time[0] * 1000 + (long)time[1] / 1000;
        var perBucket = await Task.WhenAll(Enumerable.Range(0, buckets).Select(async b =>
        {
            var stockTask = db.StringGetAsync(RedisKeys.Stock(sku, b));
            var logTask = ReadLogAsync(db, sku, b);
            await Task.WhenAll(stockTask, logTask);
            var stock = await stockTask;
            var (logged, log) = await logTask;
            return (Stock: stock.IsNull ? 0L : (long)stock, Logged: logged, Log: log);
        }));
        return new RedisView(perBucket.Sum(b => b.Stock), perBucket.SelectMany(b => b.Log).ToList(),
            perBucket.Select(b => b.Logged).ToArray(), nowMs);
    }

    /// <summary>Orders each bucket's scripts ever logged, read on its own (after MySQL, see the caller).</summary>
    private async Task<long[]> ReadLoggedAsync(string sku, int buckets)
    {
        var db = await _redis.GetDatabaseAsync();
        var counts = await Task.WhenAll(Enumerable.Range(0, buckets).Select(b => ReadLogCountsAsync(db, RedisKeys.Log(sku, b))));
        return counts.Select(c => c.Added).ToArray();
    }

    /// <summary>
    /// A bucket's log stream: how many entries it ever had (one per order its scripts deducted) and those still in it.
    /// </summary>
    private static async Task<(long Logged, List<LogEntry> Entries)> ReadLogAsync(IDatabase db, string sku, int bucket)
    {
        var key = RedisKeys.Log(sku, bucket);
        var (logged, length) = await ReadLogCountsAsync(db, key);
        var entries = new List<LogEntry>();
        RedisValue from = "-";
        while (length > 0)
        {
            var page = await db.StreamRangeAsync(key, from, "+", LogPageSize);
            foreach (var e in page)
            {
                if (DeductionLog.ToRecord(sku, bucket, e) is { } record)
                {
                    entries.Add(new LogEntry(e.Id.ToString(), record));
                }
            }

            if (page.Length < LogPageSize)
            {
                break;
            }

            // Exclusive start: "(" + id, so the last entry of this page is not read twice.
            from = "(" + page[^1].Id;
        }

        return (logged, entries);
    }

    /// <summary>
    /// XINFO STREAM's entries-added and length. Entries-added counts every XADD over the stream's life, whatever was
    /// deleted since, and the stream has no TTL: unlike the order markers and request records, the count outlives
    /// the records' TTL. A bucket that never logged an order has no stream.
    /// </summary>
    private static async Task<(long Added, long Length)> ReadLogCountsAsync(IDatabase db, RedisKey key)
    {
        try
        {
            var info = await db.StreamInfoAsync(key);
            return (info.EntriesAdded, info.Length);
        }
        catch (RedisServerException ex) when (ex.Message.Contains("no such key", StringComparison.OrdinalIgnoreCase))
        {
            return (0, 0);
        }
    }

    /// <summary>
    /// An overflow deduction (deduct.lua) leaves its order marker; a home purchase (purchase.lua) leaves the request
    /// record in its bucket's slot, naming the order. Either proves Redis committed the order, until its TTL.
    /// </summary>
    private static async Task<bool> HasProofAsync(IDatabase db, string sku, string orderId, OrderProofKey order)
    {
        var marker = db.StringGetAsync(RedisKeys.OrderMarker(sku, order.Bucket, orderId));
        var record = db.HashGetAsync(RedisKeys.Requests(sku, order.Bucket), RedisKeys.RequestField(order.UserId, order.RequestId));
        return await marker == OrderProof.Marker
            || (await record is { IsNull: false } value && value.ToString().StartsWith(OrderProof.RecordPrefix(orderId), StringComparison.Ordinal));
    }

    private sealed record LogEntry(string EntryId, DeductionRecord Record);

    /// <param name="Logged">Per bucket, the orders its log ever received.</param>
    private sealed record RedisView(long Remaining, List<LogEntry> Log, long[] Logged, long NowMs);
}
