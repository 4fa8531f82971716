using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace OrleansFlashSale.Grains;

/// <summary>
/// The grains' instruments on the project's one meter (<see cref="FlashSaleMeter.Name"/>; the messaging, store and
/// pipeline libraries add theirs to the same meter). Tags are low-cardinality on purpose: never a user, order or
/// request id.
/// </summary>
public sealed class FlashSaleMetrics
{
    private readonly Counter<long> _purchases;
    private readonly Histogram<int> _deductBatch;
    private readonly Histogram<double> _deductLatency;
    private readonly Counter<long> _redisFailures;

    // Each active bucket grain of this silo keeps its log's last sampled length here; the gauge reports their sum.
    private readonly ConcurrentDictionary<(string Sku, int Bucket), long> _logLengths = new();

    public FlashSaleMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(FlashSaleMeter.Name);
        _purchases = meter.CreateCounter<long>("flashsale.purchases", description: "Purchases answered, by outcome.");
        _deductBatch = meter.CreateHistogram<int>("flashsale.deduct.batch_size", description: "Purchases per bucket script call.");
        _deductLatency = meter.CreateHistogram<double>("flashsale.deduct.duration", unit: "ms", description: "Duration of one bucket script call.");
        _redisFailures = meter.CreateCounter<long>("flashsale.redis.failures", description: "Redis calls that failed or timed out, by script.");
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
}
