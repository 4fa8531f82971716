using OrleansFlashSale.Redis;
using StackExchange.Redis;
using static OrleansFlashSale.Bench.GrainsVsRawLua;

namespace OrleansFlashSale.Bench;

/// <summary>
/// Successful purchases per second through the client library (<see cref="ClientLibrary.PurchaseClient"/>, as every
/// gateway service sends them) → the buyer's home bucket grain → one purchase.lua per batch, against the
/// same deduct.lua called directly, one purchase per call, from this process with one shared multiplexer. The sale
/// never runs out and the per-user limit is never reached, so every call should succeed; each run is checked
/// (units sold == units acknowledged) before its figure counts.
/// </summary>
public static class DeductScenario
{
    public const string Name = "deduct";

    // The largest stock a sale may have: no run at these rates comes near it.
    private const long Stock = SaleRules.MaxStock;

    public static Task<IReadOnlyList<BenchFigure>> RunAsync(BenchSettings settings, IBenchProgress progress) =>
        GrainsVsRawLua.RunAsync(Name, "raw deduct.lua", "cluster client → grains",
            (db, concurrency) => RunRawAsync(db, concurrency, settings, progress),
            (grains, concurrency) => RunGrainsAsync(grains, concurrency, settings, progress),
            (concurrency, measured, baseline) => Figure(concurrency, measured, baseline, settings, paced: false),
            progress,
            // The default sale only: each paced figure adds a run and its drain.
            settings.Sales is not null ? null : async (grains, baselines) =>
            {
                var paced = new List<BenchFigure>();
                foreach (var concurrency in Concurrencies)
                {
                    paced.Add(await PacedWriter.RunAsync(grains,
                        () => RunGrainsAsync(grains, concurrency, settings, progress),
                        measured => Figure(concurrency, measured, baselines[concurrency], settings, paced: true), progress));
                }

                return paced;
            });

    private static BenchFigure Figure(int concurrency, BenchRun measured, BenchRun baseline, BenchSettings settings, bool paced) =>
        new(Name, $"{concurrency} callers, {settings.Shape.Buckets} buckets" + (paced ? ", writer paced" : ""), "purchases/s", measured.PerSecond,
            $"{concurrency} concurrent callers of PurchaseClient.PurchaseAsync, the client library gateways use (quantity 1, {Users:N0} users, " +
            $"limit {SaleRules.MaxPerUserLimit:N0}), through the Orleans cluster client to the running silo(s), " +
            (paced
                ? $"order writer paced at {PacedWriter.OrdersPerSecond:N0} orders/s (JetStream holds the rest; see the drain in the details)"
                : "order writer running at full speed") +
            $"; sale of {Stock:N0} units in {settings.Shape}",
            baseline.PerSecond,
            $"deduct.lua (single purchase per call, EVALSHA) from {concurrency} concurrent callers in the bench process, one shared " +
            $"ConnectionMultiplexer, stock spread over the same {settings.Shape.Buckets} bucket keys; no quota/idempotency script",
            TargetRatio: 1.0, TargetAbsolute: 100_000, Details(measured, baseline));

    private static async Task<BenchRun> RunGrainsAsync(IClusterClient grains, int concurrency, BenchSettings settings, IBenchProgress progress)
    {
        var sku = NewSku("g");
        await CreateSaleAsync(grains, Name, sku, Stock, settings.Shape);

        var rejected = new System.Collections.Concurrent.ConcurrentDictionary<PurchaseOutcome, long>();
        var outcome = await LoadRunner.RunAsync(concurrency, settings, async (_, n) =>
        {
            var result = await PurchaseAsync(grains, sku, n, "r", settings.Shape);
            if (result.Outcome == PurchaseOutcome.Created)
            {
                return true;
            }

            rejected.AddOrUpdate(result.Outcome, 1, (_, c) => c + 1);
            return false;
        }, progress, $"grains, {concurrency} callers", warmStack: true);

        var status = await grains.Product(sku).GetStatusAsync(refresh: true)
            ?? throw new BenchCheckException($"deduct: the sale {sku} has no status");
        if (status.Sold != outcome.Succeeded)
        {
            throw new BenchCheckException(
                $"deduct {sku}: {status.Sold} units sold in Redis but {outcome.Succeeded} acknowledged; no figure is reported for this run");
        }

        var details = new Dictionary<string, string>
        {
            ["sku"] = sku,
            ["calls"] = outcome.Started.ToString(),
            ["acknowledged"] = outcome.Succeeded.ToString(),
            ["sold (Redis)"] = status.Sold.ToString(),
        };
        foreach (var (kind, count) in rejected)
        {
            details["rejected " + kind] = count.ToString();
        }

        return outcome.ToRun(details);
    }

    private static async Task<BenchRun> RunRawAsync(IDatabase db, int concurrency, BenchSettings settings, IBenchProgress progress)
    {
        var sku = NewSku("r");
        await SeedRawStockAsync(db, sku, SaleRules.Split(Stock, settings.Shape.Buckets));

        long failed = 0;
        var outcome = await LoadRunner.RunAsync(concurrency, settings, async (_, n) =>
        {
            var result = await DeductRawAsync(db, sku, n, settings.Shape.Buckets);
            // A deduction answers with its log entry id ("ms-seq"); anything else is a refusal.
            if (result.Length == 2 && result[1].ToString().Contains('-', StringComparison.Ordinal))
            {
                return true;
            }

            Interlocked.Increment(ref failed);
            return false;
        }, progress, $"raw Lua, {concurrency} callers");

        var (remaining, logged) = await TallyRawStockAsync(db, sku, settings.Shape.Buckets);
        var sold = Stock - remaining;
        await DeleteRawStockAsync(db, sku, settings.Shape.Buckets);

        if (sold != outcome.Succeeded || logged != outcome.Succeeded)
        {
            throw new BenchCheckException(
                $"deduct raw {sku}: {sold} units gone from the stock keys, {logged} log entries, {outcome.Succeeded} acknowledged; no figure is reported");
        }

        return outcome.ToRun(new Dictionary<string, string>
        {
            ["sku"] = sku,
            ["calls"] = outcome.Started.ToString(),
            ["acknowledged"] = outcome.Succeeded.ToString(),
            ["refused"] = failed.ToString(),
        });
    }
}
