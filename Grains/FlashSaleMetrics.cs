using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace OrleansFlashSale.Grains;

/// <summary>The project's one meter. Tags are low-cardinality on purpose: never a user, order or request id.</summary>
public sealed class FlashSaleMetrics
{
    public const string MeterName = FlashSaleMeter.Name;

    private readonly Counter<long> _purchases;
    private readonly Histogram<int> _deductBatch;
    private readonly Histogram<double> _deductLatency;
    private readonly Counter<long> _redisFailures;
    private readonly Counter<long> _transactionsResolved;
    private readonly Counter<long> _transactionChecks;
    private readonly Counter<long> _transactionCheckMax;
    private readonly Counter<long> _natsFailures;
    private readonly Histogram<int> _orderGroupSize;
    private readonly Histogram<double> _orderGroupLatency;
    private readonly Counter<long> _orderTransactions;
    private readonly Histogram<double> _pipelineLag;
    private readonly Histogram<double> _pipelineStageLag;
    private readonly Counter<long> _deadLetters;

    // Each active bucket grain of this silo keeps its log's last sampled length here; the gauge reports their sum.
    private readonly ConcurrentDictionary<(string Sku, int Bucket), long> _logLengths = new();

    public FlashSaleMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _purchases = meter.CreateCounter<long>("flashsale.purchases", description: "Purchases answered, by outcome.");
        _deductBatch = meter.CreateHistogram<int>("flashsale.deduct.batch_size", description: "Purchases per bucket script call.");
        _deductLatency = meter.CreateHistogram<double>("flashsale.deduct.duration", unit: "ms", description: "Duration of one bucket script call.");
        _redisFailures = meter.CreateCounter<long>("flashsale.redis.failures", description: "Redis calls that failed or timed out, by script.");
        _transactionsResolved = meter.CreateCounter<long>("flashsale.tx.resolved", description: "Transactional messages committed or rolled back, by outcome and by whom (producer or check).");
        _transactionChecks = meter.CreateCounter<long>("flashsale.tx.checks", description: "Check-back answers, by state (commit, rollback, unknown, failed).");
        _transactionCheckMax = meter.CreateCounter<long>("flashsale.tx.check_max", description: "Half messages still undecided after the last check, moved to the CHECKMAX stream, by reason.");
        _natsFailures = meter.CreateCounter<long>("flashsale.nats.failures", description: "NATS calls that failed, by operation.");
        _orderGroupSize = meter.CreateHistogram<int>("flashsale.orders.group_size", description: "Orders offered per MySQL group transaction.");
        _orderGroupLatency = meter.CreateHistogram<double>("flashsale.orders.group_duration", unit: "ms", description: "Duration of one MySQL group commit, retries included.");
        _orderTransactions = meter.CreateCounter<long>("flashsale.orders.transactions", description: "MySQL group transaction attempts, by flavour and outcome.");
        _pipelineLag = meter.CreateHistogram<double>("flashsale.pipeline.lag", unit: "ms",
            description: "From an order's Redis commit (Redis server clock) to its MySQL group commit (silo clock), per order written.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000] });
        _pipelineStageLag = meter.CreateHistogram<double>("flashsale.pipeline.stage_lag", unit: "ms",
            description: "From a transaction's oldest Redis commit to its arrival at a pipeline stage (enqueued: the bucket's stream event was accepted by the stream; bridge: it reached the bridge grain; published: its JetStream commit was acknowledged; writer: the order writer received it), per transaction.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000] });
        _deadLetters = meter.CreateCounter<long>("flashsale.dead_letters", description: "Orders moved to the DLQ stream instead of MySQL, by reason (unreadable, drift, failed).");
        meter.CreateObservableGauge("flashsale.redis.log_length", () => _logLengths.Values.Sum(), unit: "{entry}",
            description: "Entries in the Redis deduction logs ({fs:SKU:bN}:log) of the buckets active in this silo, as last sampled (XLEN): orders deducted in Redis whose entries the bridge or the check-back has not trimmed yet. Sum over the silos for the cluster.");
    }

    /// <summary>The last sampled length of one bucket's deduction log (kept per bucket, reported as one sum).</summary>
    public void LogLength(string sku, int bucket, long length) => _logLengths[(sku, bucket)] = length;

    /// <summary>The bucket's activation ends here: its log is no longer this silo's to report.</summary>
    public void LogLengthGone(string sku, int bucket) => _logLengths.TryRemove((sku, bucket), out _);

    public void Purchase(PurchaseOutcome outcome) =>
        _purchases.Add(1, new KeyValuePair<string, object?>("outcome", outcome.ToString()));

    public void DeductBatch(int size, double milliseconds)
    {
        _deductBatch.Record(size);
        _deductLatency.Record(milliseconds);
    }

    public void RedisFailure(string script) =>
        _redisFailures.Add(1, new KeyValuePair<string, object?>("script", script));

    /// <param name="outcome"><c>commit</c> or <c>rollback</c>.</param>
    /// <param name="by"><c>producer</c> or <c>check</c>.</param>
    public void TransactionResolved(string outcome, string by) =>
        _transactionsResolved.Add(1, new KeyValuePair<string, object?>("outcome", outcome), new KeyValuePair<string, object?>("by", by));

    /// <param name="state"><c>commit</c>, <c>rollback</c>, <c>unknown</c> or <c>failed</c>.</param>
    public void TransactionChecked(string state) =>
        _transactionChecks.Add(1, new KeyValuePair<string, object?>("state", state));

    /// <param name="reason">One of <c>Messaging.CheckMaxReasons</c>.</param>
    public void TransactionCheckMax(string reason) =>
        _transactionCheckMax.Add(1, new KeyValuePair<string, object?>("reason", reason));

    /// <param name="operation">A fixed operation name such as <c>send-half</c>, never an id.</param>
    public void NatsFailure(string operation) =>
        _natsFailures.Add(1, new KeyValuePair<string, object?>("operation", operation));
    /// <summary>A group commit that ended (committed or not), with its size and its duration including retries.</summary>
    public void OrderGroup(int size, double milliseconds)
    {
        _orderGroupSize.Record(size);
        _orderGroupLatency.Record(milliseconds);
    }

    /// <summary>An order the writer committed to MySQL, <paramref name="milliseconds"/> after Redis committed it.</summary>
    public void PipelineLag(double milliseconds) => _pipelineLag.Record(Math.Max(0, milliseconds));

    /// <summary>
    /// A transaction of <paramref name="records"/> reached <paramref name="stage"/> (one of <see cref="PipelineStage"/>):
    /// records the time since its oldest Redis commit, on the wall clock (the commits carry Redis' TIME, so a test's
    /// fake sale clock must not be used). Nothing for an empty transaction.
    /// </summary>
    public void PipelineStageReached(string stage, IReadOnlyCollection<Persistence.DeductionRecord> records)
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

    /// <summary>One transaction attempt of a group; <paramref name="outcome"/> is one of <see cref="OrderTransactionOutcome"/>.</summary>
    public void OrderTransaction(string flavor, string outcome) =>
        _orderTransactions.Add(1, new KeyValuePair<string, object?>("flavor", flavor), new KeyValuePair<string, object?>("outcome", outcome));
}

/// <summary>The <c>outcome</c> tag of <c>flashsale.orders.transactions</c>.</summary>
public static class OrderTransactionOutcome
{
    /// <summary>Committed and took stock.</summary>
    public const string Committed = "committed";

    /// <summary>Every order of the group was already stored; nothing to commit.</summary>
    public const string Duplicate = "duplicate";

    /// <summary>Database mode: the group found no stock for any of its new orders; nothing was stored.</summary>
    public const string SoldOut = "sold_out";

    /// <summary>MySQL had less stock than the group takes: the orders that fit were committed, the others refused.</summary>
    public const string Drift = "drift";

    /// <summary>Failed with a deadlock, lock wait timeout or lost connection, and is tried again.</summary>
    public const string Retried = "retried";

    /// <summary>Failed for good.</summary>
    public const string Failed = "failed";
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

/// <summary>Stages of the order pipeline for <see cref="FlashSaleMetrics.PipelineStageReached"/>: a fixed set, so the tag stays low-cardinality.</summary>
public static class PipelineStage
{
    public const string Enqueued = "enqueued";
    public const string Bridge = "bridge";
    public const string Published = "published";
    public const string Writer = "writer";
}
