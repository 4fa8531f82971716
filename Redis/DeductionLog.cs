using System.Globalization;
using StackExchange.Redis;

namespace OrleansFlashSale.Redis;

/// <summary>
/// Reads a bucket's deduction log (a stream), whose entries purchase.lua and deduct.lua write with the fields
/// o (order), u (user), r (request), q (quantity), b (bucket), t (Redis time, ms) and x (transaction).
/// </summary>
public static class DeductionLog
{
    /// <summary>Entries read per XRANGE call when a whole range is read.</summary>
    private const int Page = 10_000;

    /// <summary>The order an entry records, or null for an entry no script wrote.</summary>
    public static DeductionRecord? ToRecord(string sku, int bucket, StreamEntry entry)
    {
        var orderId = (string?)entry["o"];
        if (string.IsNullOrEmpty(orderId) || !int.TryParse((string?)entry["q"], NumberStyles.None, CultureInfo.InvariantCulture, out var quantity))
        {
            return null;
        }

        var committedAt = long.TryParse((string?)entry["t"], NumberStyles.None, CultureInfo.InvariantCulture, out var t)
            ? t
            // The entry id starts with the Redis time in milliseconds.
            : long.Parse(entry.Id.ToString().Split('-')[0], CultureInfo.InvariantCulture);
        return new DeductionRecord(orderId, (string?)entry["r"] ?? "", sku, (string?)entry["u"] ?? "", quantity, bucket, committedAt);
    }

    /// <summary>The transaction whose script wrote an entry; null for entries written before entries named it.</summary>
    public static string? TransactionOf(StreamEntry entry) => (string?)entry["x"];

    /// <summary>
    /// Every entry from <paramref name="fromMs"/> on, page by page: however long the log has grown (the pipeline far
    /// behind), none is missed.
    /// </summary>
    public static async IAsyncEnumerable<StreamEntry> ReadFromAsync(IDatabaseAsync db, RedisKey log, long fromMs)
    {
        RedisValue from = $"{Math.Max(0, fromMs)}-0";
        while (true)
        {
            var entries = await db.StreamRangeAsync(log, minId: from, maxId: "+", count: Page);
            foreach (var entry in entries)
            {
                yield return entry;
            }

            if (entries.Length < Page)
            {
                yield break;
            }

            // Exclusive start: the next page begins after the last entry read.
            from = "(" + entries[^1].Id;
        }
    }
}
