using System.Diagnostics.Metrics;

namespace OrleansFlashSale.Grains;

/// <summary>The project's one meter. Tags are low-cardinality on purpose: never a user, order or request id.</summary>
public sealed class FlashSaleMetrics
{
    public const string MeterName = "OrleansFlashSale";

    private readonly Counter<long> _purchases;
    private readonly Histogram<int> _deductBatch;
    private readonly Histogram<double> _deductLatency;
    private readonly Counter<long> _redisFailures;
    private readonly Counter<long> _transactionsResolved;
    private readonly Counter<long> _transactionChecks;
    private readonly Counter<long> _transactionCheckMax;
    private readonly Counter<long> _natsFailures;

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
    }

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
}
