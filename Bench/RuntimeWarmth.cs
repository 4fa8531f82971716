using System.Globalization;

namespace OrleansFlashSale.Bench;

/// <summary>
/// Waits, under load, until the stack's .NET processes have stopped compiling: a cold silo or gateway spends a large
/// share of its CPU in the JIT (tiered compilation recompiles hot methods in the background for many seconds), and a
/// window counting that would measure start-up, not the steady state a sale runs in. Reads the runtime's own counter
/// (<c>dotnet_jit_compilation_time_seconds_total</c>, the System.Runtime meter) from each process's Prometheus
/// endpoint. A process whose endpoint does not answer is not waited for.
/// </summary>
public static class RuntimeWarmth
{
    /// <summary>The silo's health and metrics URL (printed by <c>./flashsale env</c>).</summary>
    public const string SiloVariable = "FLASHSALE_SILO_HEALTH_URL";

    /// <summary>The gateway's URL; its metrics are on the same port.</summary>
    public const string GatewayVariable = "FLASHSALE_GATEWAY_URL";

    private const string Counter = "dotnet_jit_compilation_time_seconds_total";

    /// <summary>
    /// JIT time per second below which a process counts as warm: 5 % of one core. Not zero: a silo keeps promoting
    /// methods its timers call (membership, statistics, the dashboard's profiler) for minutes after it started, at
    /// 10–20 % of a core in its first minute even without load, then less and less.
    /// </summary>
    private static readonly TimeSpan Warm = TimeSpan.FromMilliseconds(50);

    /// <summary>How a wait ended: how long it took, and whether every process was warm by then.</summary>
    public sealed record Result(TimeSpan Waited, bool Settled, double LastJitShare)
    {
        public override string ToString() =>
            (Settled ? $"JIT settled after {Waited.TotalSeconds:F0} s" : $"JIT still busy after {Waited.TotalSeconds:F0} s")
            + $" (last second {LastJitShare * 100:F1} % of one core)";
    }

    /// <summary>Samples every second until no process compiled for more than 5 % of a core, or <paramref name="limit"/>.</summary>
    public static async Task<Result> WaitAsync(TimeSpan limit, CancellationToken cancellationToken = default)
    {
        string[] urls = [.. new[] { SiloVariable, GatewayVariable }
            .Select(Environment.GetEnvironmentVariable)
            .OfType<string>()
            .Where(u => u.Length > 0)
            .Select(u => u.TrimEnd('/') + "/metrics")];
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var started = DateTimeOffset.UtcNow;
        var before = await ReadAsync(http, urls, cancellationToken);
        var worst = 0.0;
        while (before.Count > 0)
        {
            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            var now = await ReadAsync(http, urls, cancellationToken);
            worst = now.Where(p => before.ContainsKey(p.Key)).Select(p => p.Value - before[p.Key]).DefaultIfEmpty(0).Max();
            before = now;
            var waited = DateTimeOffset.UtcNow - started;
            if (worst < Warm.TotalSeconds || waited >= limit)
            {
                return new Result(waited, worst < Warm.TotalSeconds, worst);
            }
        }

        return new Result(DateTimeOffset.UtcNow - started, Settled: true, worst);
    }

    private static async Task<Dictionary<string, double>> ReadAsync(HttpClient http, string[] urls, CancellationToken cancellationToken)
    {
        var seconds = new Dictionary<string, double>();
        foreach (var url in urls)
        {
            try
            {
                var text = await http.GetStringAsync(url, cancellationToken);
                if (Parse(text) is { } value)
                {
                    seconds[url] = value;
                }
            }
            catch (HttpRequestException)
            {
                // Not running (a scenario without a gateway, or a stack without Prometheus): nothing to wait for there.
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // Too busy to answer within the timeout: asked again next second.
            }
        }

        return seconds;
    }

    /// <summary>The counter's value in a Prometheus text exposition, or null when it is absent.</summary>
    internal static double? Parse(string exposition) => PrometheusText.Sample(exposition, Counter);
}
