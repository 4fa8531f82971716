namespace OrleansFlashSale.Messaging;

/// <summary>Headers this component writes; <c>Nats-Msg-Id</c> is JetStream's own.</summary>
public static class TransactionHeaders
{
    public const string MessageId = "Nats-Msg-Id";
    public const string TransactionId = "FlashSale-Tx-Id";
    public const string Subject = "FlashSale-Tx-Subject";
    public const string CheckCount = "FlashSale-Tx-Check-Count";
    public const string Reason = "FlashSale-Tx-Reason";
    public const string HalfSequence = "FlashSale-Tx-Half-Seq";
    public const string SentAt = "FlashSale-Tx-Sent-At";
}

/// <summary>Reasons a half message is moved to the CHECKMAX stream; low-cardinality metric tags too.</summary>
public static class CheckMaxReasons
{
    /// <summary>The checker answered Unknown at the last check.</summary>
    public const string Unknown = "unknown";

    /// <summary>
    /// The half message lacks the transaction headers (it was not published by this component), or the checker
    /// found it could never be answered (<see cref="InvalidHalfMessageException"/>).
    /// </summary>
    public const string Malformed = "malformed";
}

internal static class MessageNames
{
    private const int MaxLength = 256;

    /// <summary>Ids travel in headers: no control characters (a CR or LF would end the header).</summary>
    public static void RequireId(string value, string parameter)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(value, parameter);
        if (value.Length > MaxLength || value.Any(char.IsControl))
        {
            throw new ArgumentException($"must be at most {MaxLength} characters without control characters, got '{value}'", parameter);
        }
    }

    /// <summary>A concrete NATS subject (no wildcards) that is not one of the half stream's.</summary>
    public static void RequireSubject(JetStreamTopology topology, string subject, string parameter)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(subject, parameter);
        var tokens = subject.Split('.');
        if (subject.Length > MaxLength || tokens.Any(t => t.Length == 0 || t is "*" or ">" || t.Any(c => char.IsWhiteSpace(c) || char.IsControl(c))))
        {
            throw new ArgumentException($"must be a NATS subject without wildcards, got '{subject}'", parameter);
        }

        if (topology.IsHalfSubject(subject))
        {
            throw new ArgumentException($"'{subject}' belongs to the half stream, which business messages never use", parameter);
        }
    }
}
