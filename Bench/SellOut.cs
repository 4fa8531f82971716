using System.Diagnostics;
using static OrleansFlashSale.Bench.GrainsVsRawLua;

namespace OrleansFlashSale.Bench;

/// <summary>
/// Buys a fresh sale out through the cluster client with a fixed number of callers, timing each call, then checks
/// the books: exactly the stock acknowledged and sold, and <c>verify</c> (Redis, MySQL, queue) without drift.
/// </summary>
public static class SellOut
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan SettleLimit = TimeSpan.FromSeconds(180);

    public sealed record Result(long Sold, TimeSpan Elapsed, double P50Ms, double P99Ms, TimeSpan Settled, IReadOnlyDictionary<string, string> Details)
    {
        public double PerSecond => Sold / Elapsed.TotalSeconds;
    }

    /// <param name="beforeVerify">
    /// Runs with the sale's SKU once the sale is sold out and its books in Redis are checked, before verify is asked;
    /// its details join the result's (a paced writer's drain).
    /// </param>
    public static async Task<Result> RunAsync(IClusterClient grains, string scenario, string label, long stock, SaleShape shape, string mode,
        int callers, IBenchProgress progress, Func<string, Task<IReadOnlyDictionary<string, string>>>? beforeVerify = null)
    {
        var sku = NewSku(scenario[..1] + (mode == SaleModes.Database ? "d" : "r") + shape.Buckets);
        await CreateSaleAsync(grains, scenario, sku, stock, shape, mode);
        long next = -1, created = 0, other = 0;
        var latencies = new List<double>[callers];
        await using var calls = await ServiceCalls.StartAsync();
        var cpu = StackCpu.Start();
        var clock = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, callers).Select(worker => Task.Run(async () =>
        {
            var mine = latencies[worker] = new List<double>();
            while (clock.Elapsed < Limit)
            {
                var n = Interlocked.Increment(ref next);
                var started = Stopwatch.GetTimestamp();
                var result = await PurchaseAsync(grains, sku, n, "m", shape);
                if (result.Outcome == PurchaseOutcome.SoldOut)
                {
                    return;
                }

                if (result.Outcome == PurchaseOutcome.Created)
                {
                    mine.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                    Interlocked.Increment(ref created);
                }
                else
                {
                    Interlocked.Increment(ref other);
                }
            }
        })).ToArray();
        var all = Task.WhenAll(workers);
        while (!all.IsCompleted)
        {
            await Task.WhenAny(all, Task.Delay(250));
            progress.Status($"{scenario}: {label}: {Interlocked.Read(ref created):N0} of {stock:N0} sold in {clock.Elapsed.TotalSeconds:F1} s");
        }

        await all;
        var elapsed = clock.Elapsed;
        // The sell-out's own cost; the pipeline's catching up afterwards (verify below) is not in it.
        var used = cpu.Stop();
        var served = await calls.StopAsync(created);
        var status = await grains.Product(sku).GetStatusAsync(refresh: true)
            ?? throw new BenchCheckException($"{scenario} {sku}: the sale has no status");
        if (created != stock || status.Sold != stock || status.Remaining != 0 || other != 0)
        {
            throw new BenchCheckException($"{scenario} {label} {sku}: {created} acknowledged, {status.Sold} sold, {status.Remaining} remaining " +
                $"of {stock}; {other} other answers (or the {Limit.TotalMinutes} min limit hit); no figure is reported");
        }

        var before = beforeVerify is null ? new Dictionary<string, string>() : await beforeVerify(sku);

        // Orders acknowledged == orders in MySQL, nothing stranded in the queue: verify must come back clean.
        progress.Status($"{scenario}: {label}: waiting for verify to report no drift");
        var verifier = grains.GetGrain<IReconciliationGrain>(0);
        var settling = Stopwatch.StartNew();
        string? firstDrift = null;
        TimeSpan? firstCall = null;
        // What the first verify had to read: its time grows with the log entries still in Redis and the orders the
        // writer has yet to store.
        string firstBacklog = "";
        while (true)
        {
            var report = await verifier.VerifyAsync(sku, repair: false);
            // How long the first answer took, and what it said, show what the settling waited for.
            if (firstCall is null)
            {
                firstCall = settling.Elapsed;
                firstBacklog = report is null
                    ? "no report"
                    : $"log entries: {report.PendingInPipeline.Count} not yet in MySQL, {report.MissingInMySql.Count} missing, " +
                      $"{report.UntrimmedLogEntries} in MySQL but not trimmed; {report.Messages.WriterPending} messages pending for the writer";
            }

            if (report is { Drift: false })
            {
                break;
            }

            firstDrift ??= string.Join("; ", report?.Problems ?? ["no report"]);
            if (settling.Elapsed > SettleLimit)
            {
                throw new BenchCheckException($"{scenario} {label} {sku}: verify still reports drift after {SettleLimit.TotalSeconds} s: " +
                    string.Join("; ", report?.Problems ?? ["no report"]) + "; no figure is reported");
            }

            await Task.Delay(250);
        }

        var sorted = latencies.SelectMany(l => l).Order().ToArray();
        var p50 = Percentile(sorted, 0.50);
        var p99 = Percentile(sorted, 0.99);
        return new Result(created, elapsed, p50, p99, settling.Elapsed, new Dictionary<string, string>
        {
            ["sku"] = sku,
            ["mode"] = mode,
            ["buckets"] = shape.Buckets.ToString(),
            ["quota shards"] = shape.QuotaShards.ToString(),
            ["stock"] = stock.ToString(),
            ["acknowledged"] = created.ToString(),
            ["sold"] = status.Sold.ToString(),
            ["sell-out seconds"] = elapsed.TotalSeconds.ToString("F2"),
            ["p50 ms"] = p50.ToString("F2"),
            ["p99 ms"] = p99.ToString("F2"),
            ["verify clean after s"] = settling.Elapsed.TotalSeconds.ToString("F1"),
            ["verify, first report"] = firstDrift is null ? "clean" : firstDrift[..Math.Min(firstDrift.Length, 300)],
            ["verify, first answer after s"] = firstCall.Value.TotalSeconds.ToString("F1"),
            ["verify, first answer read"] = firstBacklog,
        }.Concat(StackCpu.PerOperation(used, created)).Concat(served).Concat(before).ToDictionary());
    }

    /// <summary>Nearest-rank percentile of sorted values.</summary>
    public static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
}
