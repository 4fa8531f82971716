using NATS.Client.JetStream.Models;

namespace OrleansFlashSale.Messaging;

/// <summary>Names of the streams, subjects and the check-back consumer under one <see cref="JetStreamOptions.StreamPrefix"/>.</summary>
public sealed class JetStreamTopology
{
    private readonly string _prefix;

    public JetStreamTopology(string prefix)
    {
        _prefix = prefix;
        HalfStream = $"{prefix}_HALF";
        HalfSubject = $"{prefix}.half.tx";
        DeductionsStream = $"{prefix}_DEDUCTIONS";
        CheckMaxStream = $"{prefix}_CHECKMAX";
        CheckMaxSubject = $"{prefix}.checkmax.tx";
        DeadLetterStream = $"{prefix}_DLQ";
        CheckConsumer = $"{prefix}_HALF_CHECK";
    }

    /// <summary>Half messages; read only by the check-back.</summary>
    public string HalfStream { get; }

    /// <summary>The one subject half messages are published to (the business subject travels in a header).</summary>
    public string HalfSubject { get; }

    public string DeductionsStream { get; }

    public string CheckMaxStream { get; }

    public string CheckMaxSubject { get; }

    public string DeadLetterStream { get; }

    /// <summary>The order writers' durable consumer of the deductions stream, shared by every silo.</summary>
    public const string WriterConsumer = "orders-writer";

    /// <summary>The durable pull consumer all check-back services share.</summary>
    public string CheckConsumer { get; }

    public string HalfSubjects => $"{_prefix}.half.>";

    public string DeductionsSubjects => $"{_prefix}.deductions.>";

    public string CheckMaxSubjects => $"{_prefix}.checkmax.>";

    public string DeadLetterSubjects => $"{_prefix}.dlq.>";

    /// <summary>A subject of the deductions stream, e.g. <c>FLASHSALE.deductions.sku-1</c>.</summary>
    public string Deductions(string token) => $"{_prefix}.deductions.{token}";

    /// <summary>A subject of the dead-letter stream.</summary>
    public string DeadLetter(string token) => $"{_prefix}.dlq.{token}";

    /// <summary>True for subjects of the half stream, which business messages must never use.</summary>
    public bool IsHalfSubject(string subject) =>
        subject.StartsWith($"{_prefix}.half.", StringComparison.Ordinal) || subject == $"{_prefix}.half";

    internal IEnumerable<StreamConfig> Streams(JetStreamOptions options)
    {
        StreamConfig Stream(string name, string subjects, string description, TimeSpan duplicateWindow) => new(name, [subjects])
        {
            Description = description,
            Storage = StreamConfigStorage.File,
            Retention = StreamConfigRetention.Limits,
            NumReplicas = options.Replicas,
            DuplicateWindow = duplicateWindow,
        };

        // Half and deductions messages are deduplicated over the whole window the check-back may re-publish in.
        yield return Stream(HalfStream, HalfSubjects, "Half (prepared) transactional messages; read only by the transaction check-back.", options.DuplicateWindow);
        // Only the deductions stream ages out: it holds every order sold, and the writer reads it within seconds. The
        // half stream empties itself (commit and rollback delete), and CHECKMAX and DLQ are evidence an operator must
        // see whatever its age.
        yield return Stream(DeductionsStream, DeductionsSubjects, "Committed stock deductions.", options.DuplicateWindow) with
        {
            MaxAge = options.DeductionsMaxAge,
        };
        yield return Stream(CheckMaxStream, CheckMaxSubjects, "Half messages still undecided after the last check; for an operator.", options.DuplicateWindow);
        yield return Stream(DeadLetterStream, DeadLetterSubjects, "Messages their consumers gave up on.", options.DuplicateWindow);
    }
}
