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

    /// <summary>Order id → where it lives, so GET /api/orders/{id} can answer "reserved" before MySQL has it.</summary>
    public static RedisKey OrderIndex(string orderId) => "fs:order:" + orderId;

    /// <summary>
    /// A transaction's fence: 'C' once its script deducted, 'X' once the check-back rolled it back (the script then
    /// refuses to run). Kept as long as the records.
    /// </summary>
    public static RedisKey Fence(string sku, int bucket, string transactionId) => BucketTag(sku, bucket) + ":tx:" + transactionId;

    /// <summary>Set when re-bucketing removes the bucket (take.lua), cleared when a grow brings it back (give.lua).</summary>
    public static RedisKey Removed(string sku, int bucket) => BucketTag(sku, bucket) + ":removed";

    public static RedisKey Transfer(string sku, int bucket, string transferId) => BucketTag(sku, bucket) + ":t:" + transferId;

    // User and request ids may contain ':'; the length prefix keeps ("a:b","c") and ("a","b:c") apart.
    public static RedisKey UserUnits(string sku, int shard, string userId) =>
        $"{QuotaTag(sku, shard)}:u:{userId.Length}:{userId}";

    /// <summary>Users of the shard holding units (bounded by the stock): tells replays from new requests when sold out.</summary>
    public static RedisKey Buyers(string sku, int shard) => $"{QuotaTag(sku, shard)}:buyers";

    public static RedisKey Request(string sku, int shard, string userId, string requestId) =>
        $"{QuotaTag(sku, shard)}:r:{userId.Length}:{userId}:{requestId}";
}
