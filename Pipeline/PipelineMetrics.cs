using System.Diagnostics.Metrics;

namespace OrleansFlashSale.Pipeline;

/// <summary>The order pipeline's instruments, on the project's one meter (<see cref="FlashSaleMeter.Name"/>).</summary>
public sealed class PipelineMetrics
{
    private static readonly double[] LagBoundaries = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000];

    private readonly Histogram<double> _pipelineLag;
    private readonly Histogram<double> _pipelineStageLag;
    private readonly Counter<long> _deadLetters;

    public PipelineMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(FlashSaleMeter.Name);
        _pipelineLag = meter.CreateHistogram<double>("flashsale.pipeline.lag", unit: "ms",
            description: "From an order's Redis commit (Redis server clock) to its MySQL group commit (silo clock), per order written.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LagBoundaries });
        _pipelineStageLag = meter.CreateHistogram<double>("flashsale.pipeline.stage_lag", unit: "ms",
            description: "From a transaction's oldest Redis commit to its arrival at a pipeline stage (enqueued: the bucket's stream event was accepted by the stream; bridge: it reached the bridge grain; published: its JetStream commit was acknowledged; writer: the order writer received it), per transaction.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LagBoundaries });
        _deadLetters = meter.CreateCounter<long>("flashsale.dead_letters", description: "Orders moved to the DLQ stream instead of MySQL, by reason (unreadable, drift, failed).");
    }

    /// <summary>An order the writer committed to MySQL, <paramref name="milliseconds"/> after Redis committed it.</summary>
    public void PipelineLag(double milliseconds) => _pipelineLag.Record(Math.Max(0, milliseconds));

    /// <summary>
    /// A transaction of <paramref name="records"/> reached <paramref name="stage"/> (one of <see cref="PipelineStage"/>):
    /// records the time since its oldest Redis commit, on the wall clock (the commits carry Redis' TIME, so a test's
    /// fake sale clock must not be used). Nothing for an empty transaction.
    /// </summary>
    public void PipelineStageReached(string stage, IReadOnlyCollection<DeductionRecord> records)
    {
        if (records.Count > 0)
        {
            var lag = TimeProvider.System.GetUtcNow().ToUnixTimeMilliseconds() - records.Min(r => r.CommittedAtMs);
            _pipelineStageLag.Record(Math.Max(0, lag), new KeyValuePair<string, object?>("stage", stage));
        }
    }

    /// <param name="reason">One of <see cref="DeadLetterReason"/>, never the exception text.</param>
    public void DeadLetter(string reason) =>
        _deadLetters.Add(1, new KeyValuePair<string, object?>("reason", reason));
}

/// <summary>The <c>reason</c> tag of <c>flashsale.dead_letters</c>.</summary>
public static class DeadLetterReason
{
    /// <summary>The message is not a deduction record the schema accepts.</summary>
    public const string Unreadable = "unreadable";

    /// <summary>MySQL has less stock than the order takes.</summary>
    public const string Drift = "drift";

    /// <summary>Failed too many times with an error that is not an outage.</summary>
    public const string Failed = "failed";
}

/// <summary>Stages of the order pipeline for <see cref="PipelineMetrics.PipelineStageReached"/>: a fixed set, so the tag stays low-cardinality.</summary>
public static class PipelineStage
{
    public const string Enqueued = "enqueued";
    public const string Bridge = "bridge";
    public const string Published = "published";
    public const string Writer = "writer";
}
