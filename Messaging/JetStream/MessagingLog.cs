using Microsoft.Extensions.Logging;

namespace OrleansFlashSale.Messaging;

internal static partial class MessagingLog
{
    [LoggerMessage(EventId = 2001, Level = LogLevel.Error, Message = "Transaction {TransactionId}: still undecided ({Reason}) after check {CheckCount}; half message {Sequence} moved to stream {Stream} for an operator")]
    public static partial void MovedToCheckMax(ILogger logger, string transactionId, string reason, int checkCount, ulong sequence, string stream);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Warning, Message = "Transaction {TransactionId}: the checker failed at check {CheckCount}; asked again in {Delay}, without limit")]
    public static partial void CheckerFailed(ILogger logger, Exception exception, string transactionId, int checkCount, TimeSpan delay);

    [LoggerMessage(EventId = 2015, Level = LogLevel.Error, Message = "Transaction {TransactionId}: the checker found its half message unanswerable at check {CheckCount}")]
    public static partial void HalfMessageInvalid(ILogger logger, Exception exception, string transactionId, int checkCount);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Error, Message = "Half message {Sequence}: handling delivery {Delivery} failed; it is delivered again in {Delay}, without limit")]
    public static partial void HandlingFailed(ILogger logger, Exception exception, ulong sequence, ulong delivery, TimeSpan delay);

    [LoggerMessage(EventId = 2004, Level = LogLevel.Error, Message = "Transaction check-back: consuming stream {Stream} failed; starting again in {Delay}")]
    public static partial void ConsumeFailed(ILogger logger, Exception exception, string stream, TimeSpan delay);

    [LoggerMessage(EventId = 2005, Level = LogLevel.Information, Message = "Transaction check-back consuming stream {Stream} as {Consumer}: timeout {Timeout}, interval {Interval}, at most {MaxChecks} checks")]
    public static partial void CheckServiceStarted(ILogger logger, string stream, string consumer, TimeSpan timeout, TimeSpan interval, int maxChecks);

    [LoggerMessage(EventId = 2006, Level = LogLevel.Debug, Message = "Half message {Sequence} was already removed from stream {Stream} ({Reason})")]
    public static partial void HalfAlreadyGone(ILogger logger, ulong sequence, string stream, string reason);

    [LoggerMessage(EventId = 2007, Level = LogLevel.Information, Message = "Transaction {TransactionId}: check {CheckCount} answered {State}")]
    public static partial void Checked(ILogger logger, string transactionId, int checkCount, TransactionState state);

    [LoggerMessage(EventId = 2008, Level = LogLevel.Warning, Message = "Half message {Sequence}: extending the ack wait failed; another process may check it too")]
    public static partial void LeaseRenewFailed(ILogger logger, Exception exception, ulong sequence);

    [LoggerMessage(EventId = 2009, Level = LogLevel.Error, Message = "Half message {Sequence}: handing it back to the server failed; the server delivers it again after the ack wait")]
    public static partial void NakFailed(ILogger logger, Exception exception, ulong sequence);

    [LoggerMessage(EventId = 2010, Level = LogLevel.Debug, Message = "Message {MessageId} on {Subject} was stored before; the duplicate was dropped")]
    public static partial void DuplicateDropped(ILogger logger, string messageId, string subject);

    [LoggerMessage(EventId = 2011, Level = LogLevel.Information, Message = "Transaction check-back stopped; half messages it held are delivered again after the ack wait")]
    public static partial void CheckServiceStopped(ILogger logger);

    [LoggerMessage(EventId = 2013, Level = LogLevel.Debug, Message = "Half message {Sequence}: delivery {Delivery} abandoned while stopping")]
    public static partial void CheckAbandoned(ILogger logger, ulong sequence, ulong delivery);

    [LoggerMessage(EventId = 2014, Level = LogLevel.Warning, Message = "Transaction {TransactionId}: committed by the check-back, but its clean-up failed; verify --repair finishes it")]
    public static partial void CommittedCleanupFailed(ILogger logger, Exception exception, string transactionId);
}
