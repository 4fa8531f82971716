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

    public FlashSaleMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _purchases = meter.CreateCounter<long>("flashsale.purchases", description: "Purchases answered, by outcome.");
        _deductBatch = meter.CreateHistogram<int>("flashsale.deduct.batch_size", description: "Purchases per bucket script call.");
        _deductLatency = meter.CreateHistogram<double>("flashsale.deduct.duration", unit: "ms", description: "Duration of one bucket script call.");
        _redisFailures = meter.CreateCounter<long>("flashsale.redis.failures", description: "Redis calls that failed or timed out, by script.");
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
}
