using System.Globalization;
using System.Text;
using StackExchange.Redis;

namespace OrleansFlashSale.Redis;

/// <summary>
/// Key layout. Every key a script touches shares one hash tag, the part in braces: bucket N and quota shard N share
/// <c>{fs:SKU:bN}</c>. On Redis Cluster each tag maps to one slot, so buckets of a SKU spread over the masters while
/// each script stays single-slot; and because a user's quota shard is also their home bucket, the common purchase
/// (home bucket has stock) checks the request record, the limit and the stock in one script (purchase.lua).
/// </summary>
public static class RedisKeys
{
    public static string BucketTag(string sku, int bucket) => $"{{fs:{sku}:b{bucket}}}";

    /// <summary>The same tag as bucket <paramref name="shard"/>: the shard's users buy from that bucket in one script.</summary>
    public static string QuotaTag(string sku, int shard) => BucketTag(sku, shard);

    public static RedisKey Stock(string sku, int bucket) => BucketTag(sku, bucket) + ":stock";

    /// <summary>The deduction log (a stream) that the order pipeline reads; one entry per order, trimmed once forwarded.</summary>
    public static RedisKey Log(string sku, int bucket) => BucketTag(sku, bucket) + ":log";

    public static RedisKey OrderMarker(string sku, int bucket, string orderId) => BucketTag(sku, bucket) + ":o:" + orderId;

    public static RedisKey ReturnMarker(string sku, int bucket, string orderId) => BucketTag(sku, bucket) + ":ret:" + orderId;

    /// <summary>
    /// The hash holding order id → where it lives, so GET /api/orders/{id} can answer "reserved" before MySQL has
    /// it. One hash per second of the order ids' own clock (a version 7 UUID starts with its Unix milliseconds), so
    /// a batch's orders are one HSET, and a reader finds the hash from the id alone. Null for an id that is not a
    /// version 7 UUID in "N" format: this project never made it.
    /// </summary>
    public static RedisKey? OrderIndex(string orderId)
    {
        if (orderId.Length != 32 || orderId[12] != '7'
            || !long.TryParse(orderId.AsSpan(0, 12), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var ms))
        {
            return null;
        }

        return "fs:orders:" + (ms / 1000).ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// A transaction's fence: 'C' once its script deducted, 'X' once the check-back rolled it back (the script then
    /// refuses to run). Kept as long as the records.
    /// </summary>
    public static RedisKey Fence(string sku, int bucket, string transactionId) => BucketTag(sku, bucket) + ":tx:" + transactionId;

    /// <summary>Set when re-bucketing removes the bucket (take.lua), cleared when a grow brings it back (give.lua).</summary>
    public static RedisKey Removed(string sku, int bucket) => BucketTag(sku, bucket) + ":removed";

    public static RedisKey Transfer(string sku, int bucket, string transferId) => BucketTag(sku, bucket) + ":t:" + transferId;

    /// <summary>
    /// The shard's per-user unit counters, a hash of user id → units held. Its fields are also the shard's buyers:
    /// once the sale is sold out only their requests can be replays, so the gateway answers everyone else from memory.
    /// </summary>
    public static RedisKey Units(string sku, int shard) => $"{QuotaTag(sku, shard)}:units";

    /// <summary>
    /// The shard's request records, a hash of <see cref="RequestField"/> → record. Hashes rather than a key per
    /// record: a script reads all of a batch's records and counters with two HMGETs and writes them with two HSETs,
    /// and Redis keeps two keys per shard instead of two per purchase (docs/hot-path.md, "Records in hashes").
    /// </summary>
    public static RedisKey Requests(string sku, int shard) => $"{QuotaTag(sku, shard)}:requests";

    /// <summary>
    /// A request's field in <see cref="Requests"/>. User ids may contain ':'; the length prefix (in UTF-8 bytes, as
    /// Lua's # counts them) keeps ("a:b","c") and ("a","b:c") apart.
    /// </summary>
    public static string RequestField(string userId, string requestId) =>
        $"{Encoding.UTF8.GetByteCount(userId)}:{userId}:{requestId}";
}
