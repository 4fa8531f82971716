using Microsoft.Extensions.Logging;

namespace OrleansFlashSale.Pipeline;

internal static partial class PipelineLog
{
    [LoggerMessage(EventId = 4010, Level = LogLevel.Information, Message = "Order writer consuming {Stream} with consumer {Consumer}")]
    public static partial void WriterStarted(ILogger logger, string stream, string consumer);

    [LoggerMessage(EventId = 4011, Level = LogLevel.Warning, Message = "Order writer: consuming failed; retrying in {Delay}")]
    public static partial void WriterConsumeFailed(ILogger logger, Exception exception, TimeSpan delay);

    [LoggerMessage(EventId = 4012, Level = LogLevel.Warning, Message = "Order writer: order {OrderId} of {Sku} not written (delivery {Delivery}); retrying in {Delay}")]
    public static partial void WriteFailed(ILogger logger, Exception exception, string orderId, string sku, ulong delivery, TimeSpan delay);

    [LoggerMessage(EventId = 4013, Level = LogLevel.Error, Message = "Order writer: message {Sequence} moved to the dead-letter stream: {Reason}")]
    public static partial void DeadLettered(ILogger logger, ulong sequence, string reason);
}
