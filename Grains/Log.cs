using Microsoft.Extensions.Logging;

namespace OrleansFlashSale.Grains;

internal static partial class Log
{
    [LoggerMessage(EventId = 1001, Level = LogLevel.Error, Message = "Bucket {Sku}/{Bucket}: Redis script {Script} failed; {Count} callers get an unknown outcome")]
    public static partial void BucketScriptFailed(ILogger logger, Exception exception, string sku, int bucket, string script, int count);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Error, Message = "Bucket {Sku}/{Bucket}: the stock key is missing in Redis; purchases are refused until an operator restores it")]
    public static partial void StockKeyMissing(ILogger logger, string sku, int bucket);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Error, Message = "Quota shard {Sku}/{Shard}: Redis script {Script} failed for {Count} purchases")]
    public static partial void QuotaScriptFailed(ILogger logger, Exception exception, string sku, int shard, string script, int count);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Warning, Message = "Quota shard {Sku}/{Shard}: bucket {Bucket} failed for order {OrderId}; the outcome is settled on replay")]
    public static partial void BucketCallFailed(ILogger logger, Exception exception, string sku, int shard, int bucket, string orderId);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Information, Message = "Sale {Sku} created: stock {Stock} in {Buckets} buckets, {QuotaShards} quota shards")]
    public static partial void SaleCreated(ILogger logger, string sku, long stock, int buckets, int quotaShards);

    [LoggerMessage(EventId = 1006, Level = LogLevel.Information, Message = "Sale {Sku}: re-bucketing {From} -> {To} buckets (layout {Version})")]
    public static partial void Rebucketing(ILogger logger, string sku, int from, int to, long version);

    [LoggerMessage(EventId = 1007, Level = LogLevel.Information, Message = "Sale {Sku}: re-bucketed to {To} buckets, {Moved} units moved")]
    public static partial void Rebucketed(ILogger logger, string sku, int to, long moved);

    [LoggerMessage(EventId = 1008, Level = LogLevel.Information, Message = "Sale {Sku} is sold out")]
    public static partial void SoldOut(ILogger logger, string sku);

    [LoggerMessage(EventId = 1009, Level = LogLevel.Error, Message = "Sale {Sku}: re-bucketing failed; it resumes on the next call or activation")]
    public static partial void RebucketFailed(ILogger logger, Exception exception, string sku);

    [LoggerMessage(EventId = 1011, Level = LogLevel.Error, Message = "Quota shard {Sku}/{Shard}: database deduction of order {OrderId} failed; the reservation is kept for a replay")]
    public static partial void DatabaseDeductFailed(ILogger logger, Exception exception, string sku, int shard, string orderId);

    [LoggerMessage(EventId = 1010, Level = LogLevel.Error, Message = "Quota shard {Sku}/{Shard}: stored request record '{Record}' cannot be read")]
    public static partial void BadRecord(ILogger logger, string sku, int shard, string record);

    [LoggerMessage(EventId = 1012, Level = LogLevel.Warning, Message = "Bucket {Sku}/{Bucket}: handing a purchase to quota shard {Shard} failed; the buyer is answered unavailable")]
    public static partial void ForwardFailed(ILogger logger, Exception exception, string sku, int bucket, int shard);

    [LoggerMessage(EventId = 1013, Level = LogLevel.Warning, Message = "Bucket {Sku}/{Bucket}: writing the order index of {Count} orders failed; those orders are found by id only once MySQL has them")]
    public static partial void OrderIndexFailed(ILogger logger, Exception exception, string sku, int bucket, int count);

    [LoggerMessage(EventId = 1020, Level = LogLevel.Information, Message = "Sale {Sku} closed at {ClosedAt}; its per-user records expire after the payment timeout and the record retention")]
    public static partial void SaleClosed(ILogger logger, string sku, DateTimeOffset closedAt);

    [LoggerMessage(EventId = 1021, Level = LogLevel.Warning, Message = "Bucket {Sku}/{Bucket}: reading the deduction log's length failed; the log-length gauge keeps the last value")]
    public static partial void LogSampleFailed(ILogger logger, Exception exception, string sku, int bucket);
}
