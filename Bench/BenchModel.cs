using System.Globalization;

namespace OrleansFlashSale.Bench;

/// <summary>One measured figure and the baseline it is compared with, both taken in the same run.</summary>
public sealed record BenchFigure(
    string Scenario,
    string Name,
    string Unit,
    double Measured,
    string MeasuredHow,
    double Baseline,
    string BaselineHow,
    double? TargetRatio,
    double? TargetAbsolute,
    IReadOnlyDictionary<string, string> Details,
    double? TargetMax = null,
    string? TargetCondition = null,
    bool? TargetConditionMet = null)
{
    public double Ratio => Baseline > 0 ? Measured / Baseline : double.NaN;

    /// <summary>
    /// Decimals the ratio is shown with: two, or more where two would round it onto the other side of its target
    /// (0.598 against a target of 0.6 is shown as 0.598×, not as 0.60× beside "not met").
    /// </summary>
    public int RatioDigits
    {
        get
        {
            var digits = 2;
            while (digits < 6 && TargetRatio is { } target && (Math.Round(Ratio, digits) >= target) != (Ratio >= target))
            {
                digits++;
            }

            return digits;
        }
    }

    /// <summary>The ratio as printed, e.g. "1.23×".</summary>
    public string RatioText => Ratio.ToString("F" + RatioDigits, CultureInfo.InvariantCulture) + "×";

    /// <summary>A figure measured on its own (a lag, a memory size): nothing in the run to compare it with.</summary>
    public bool HasBaseline => Baseline > 0;

    /// <summary>Null when the figure has no target; otherwise whether every target it has is met.</summary>
    public bool? TargetsMet =>
        TargetRatio is null && TargetAbsolute is null && TargetMax is null && TargetCondition is null
            ? null
            : (TargetRatio is not { } r || Ratio >= r) && (TargetAbsolute is not { } a || Measured >= a)
              && (TargetMax is not { } m || Measured <= m) && TargetConditionMet != false;

    /// <summary>The targets in words, e.g. "ratio ≥ 2, ≤ 1,000 ms".</summary>
    public string TargetWords =>
        string.Join(", ", new[]
        {
            TargetRatio is { } r ? $"ratio ≥ {r:0.##}" : null,
            TargetAbsolute is { } a ? $"≥ {a:N0} {Unit}" : null,
            TargetMax is { } m ? $"≤ {m:N0} {Unit}" : null,
            TargetCondition,
        }.Where(t => t is not null));
}

/// <summary>A run that was counted and checked; a failed check throws instead, so no figure of a wrong run exists.</summary>
public sealed record BenchRun(long Operations, TimeSpan Elapsed, IReadOnlyDictionary<string, string> Details)
{
    public double PerSecond => Operations / Elapsed.TotalSeconds;

    /// <summary>The same run with <paramref name="more"/> details (a paced writer's drain) after its own.</summary>
    public BenchRun WithDetails(IEnumerable<KeyValuePair<string, string>> more) => this with { Details = Details.Concat(more).ToDictionary() };
}

/// <summary>The books of a run did not balance: its figure must not be printed.</summary>
public sealed class BenchCheckException(string message) : Exception(message);

/// <summary>
/// How long each measurement lasts and how much is warmed up first, and the shape of the sales the grain scenarios
/// (deduct, soldout, http, http-soldout, pipeline, memory) create: <c>--buckets N</c> gives N buckets and N quota shards.
/// </summary>
public sealed record BenchSettings(bool Quick, SaleShape? Sales = null)
{
    public SaleShape Shape => Sales ?? SaleShape.Default;

    public TimeSpan Warmup => Quick ? TimeSpan.FromSeconds(1) : TimeSpan.FromSeconds(3);

    /// <summary>
    /// The warm-up of wrk against the gateway: the gateway (and the silo, when the run started it) meets its first
    /// load here, and after 3 s a cold process still spends much of its CPU in the JIT, which the figure would count.
    /// </summary>
    public TimeSpan GatewayWarmup => Quick ? TimeSpan.FromSeconds(2) : TimeSpan.FromSeconds(12);

    public TimeSpan Measure => Quick ? TimeSpan.FromSeconds(5) : TimeSpan.FromSeconds(15);

    /// <summary>The longest a warm-up goes on waiting for the stack's JIT to settle (<see cref="RuntimeWarmth"/>).</summary>
    public TimeSpan JitSettleLimit => Quick ? TimeSpan.FromSeconds(10) : TimeSpan.FromSeconds(30);
}

/// <summary>Buckets and quota shards of a benchmark's sale; one shard per bucket, so shard i's users prefer bucket i.</summary>
public sealed record SaleShape(int Buckets, int QuotaShards)
{
    /// <summary>The default sale's shape (<see cref="SaleRules.DefaultBuckets"/>, one quota shard each).</summary>
    public static readonly SaleShape Default = new(SaleRules.DefaultBuckets, SaleRules.DefaultBuckets);

    /// <summary>What runs before the default changed measured; reported beside the default in every full run.</summary>
    public static readonly SaleShape Sixteen = new(16, 16);

    public override string ToString() => $"{Buckets} buckets, {QuotaShards} quota shards";
}

/// <summary>Reports what a running scenario is doing, for the live display.</summary>
public interface IBenchProgress
{
    void Status(string text);
}
