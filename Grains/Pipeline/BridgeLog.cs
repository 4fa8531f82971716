using Microsoft.Extensions.Logging;

namespace OrleansFlashSale.Grains;

internal static partial class BridgeLog
{
    [LoggerMessage(EventId = 4001, Level = LogLevel.Warning, Message = "Bridge {Sku}/{Bucket}: commit of transaction {TransactionId} ({Count} orders) failed; the check-back will commit it")]
    public static partial void BridgeCommitFailed(ILogger logger, Exception exception, string sku, int bucket, string transactionId, int count);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "Bridge {Sku}/{Bucket}: trimming {Count} forwarded log entries failed; verify --repair trims them")]
    public static partial void LogTrimFailed(ILogger logger, Exception exception, string sku, int bucket, int count);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Error, Message = "Bridge {Sku}: stream error")]
    public static partial void BridgeStreamError(ILogger logger, Exception exception, string sku);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Warning, Message = "Bucket {Sku}/{Bucket}: half message for {Count} purchases could not be sent; none deducted")]
    public static partial void HalfSendFailed(ILogger logger, Exception exception, string sku, int bucket, int count);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Warning, Message = "Bucket {Sku}/{Bucket}: rollback of transaction {TransactionId} failed; the check-back will roll it back")]
    public static partial void RollbackFailed(ILogger logger, Exception exception, string sku, int bucket, string transactionId);

    [LoggerMessage(EventId = 4006, Level = LogLevel.Warning, Message = "Bucket {Sku}/{Bucket}: publishing commit event for transaction {TransactionId} failed; the check-back will commit it")]
    public static partial void CommitEventFailed(ILogger logger, Exception exception, string sku, int bucket, string transactionId);

    [LoggerMessage(EventId = 4007, Level = LogLevel.Warning, Message = "Test hook: commit event of transaction {TransactionId} dropped as if the silo died after the Redis commit")]
    public static partial void CommitEventDropped(ILogger logger, string transactionId);

    [LoggerMessage(EventId = 4014, Level = LogLevel.Warning, Message = "Bucket {Sku}/{Bucket}: transaction {TransactionId} reached Redis after the check-back rolled it back; its script deducted nothing")]
    public static partial void TransactionFenced(ILogger logger, string sku, int bucket, string transactionId);
}
