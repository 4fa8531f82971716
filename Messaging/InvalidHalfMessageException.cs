namespace OrleansFlashSale.Messaging;

/// <summary>
/// Thrown by an <see cref="ITransactionChecker"/> for a half message it can never answer, such as a payload it cannot
/// read: asking again would fail the same way, so the check-back moves it to CHECKMAX at once. Any other exception
/// means only that the check could not be made now.
/// </summary>
public sealed class InvalidHalfMessageException(string message, Exception? innerException = null)
    : Exception(message, innerException);
