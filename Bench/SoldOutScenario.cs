using OrleansFlashSale.Redis;
using StackExchange.Redis;
using static OrleansFlashSale.Bench.GrainsVsRawLua;

namespace OrleansFlashSale.Bench;

/// <summary>
/// Rejections per second once a sale is sold out: new purchase requests through the cluster client → quota grain
/// (which knows the sale is sold out and answers new buyers from memory), against deduct.lua called directly on empty
/// bucket keys, which asks Redis every time. Each run is checked: every call answered "sold out" and nothing more
/// was sold.
/// </summary>
public static class SoldOutScenario
{
    public const string Name = "soldout";
    private const long Stock = 1_000;

    public static Task<IReadOnlyList<BenchFigure>> RunAsync(BenchSettings settings, IBenchProgress progress) =>
        GrainsVsRawLua.RunAsync(Name, "raw deduct.lua on empty buckets", "cluster client → grains, sold out",
            (db, concurrency) => RunRawAsync(db, concurrency, settings, progress),
            (grains, concurrency) => RunGrainsAsync(grains, concurrency, settings, progress),
            (concurrency, measured, baseline) => new BenchFigure(Name, $"{concurrency} callers", "rejections/s", measured.PerSecond,
                $"{concurrency} concurrent callers of IQuotaGrain.PurchaseAsync with new request ids (quantity 1, {Users:N0} users) " +
                $"after a sale of {Stock:N0} units in {settings.Shape.Buckets} buckets was bought out through the grains; every answer must be SoldOut",
                baseline.PerSecond,
                $"deduct.lua (single purchase per call, EVALSHA) on {settings.Shape.Buckets} bucket stock keys set to 0, from {concurrency} concurrent " +
                "callers in the bench process, one shared ConnectionMultiplexer: every call asks Redis and is refused",
                TargetRatio: 3.0, null, Details(measured, baseline)),
            progress,
            async (grains, baselines) => [await RunFloorAsync(grains, baselines[MostCallers], settings, progress)]);

    /// <summary>
    /// The cheapest answer a grain can give through the cluster client, under the same load: what a sold-out answer
    /// from memory cannot beat. No target; its ratio shows how far the figures above can go on this machine.
    /// </summary>
    private static async Task<BenchFigure> RunFloorAsync(IClusterClient grains, BenchRun baseline, BenchSettings settings,
        IBenchProgress progress)
    {
        var sku = NewSku("f");
        var buckets = settings.Shape.Buckets;
        // One unit per bucket: every answer must be 1, so a wrong or stale answer fails the run.
        await CreateSaleAsync(grains, Name, sku, buckets, settings.Shape);
        var wrong = 0L;
        var outcome = await LoadRunner.RunAsync(MostCallers, settings, async (_, n) =>
        {
            if (await grains.Bucket(sku, (int)(n % buckets)).GetRemainingAsync(refresh: false) == 1)
            {
                return true;
            }

            Interlocked.Increment(ref wrong);
            return false;
        }, progress, $"cluster-client floor, {MostCallers} callers", warmStack: true);

        if (wrong > 0 || outcome.Succeeded != outcome.Started)
        {
            throw new BenchCheckException($"soldout floor {sku}: {wrong} of {outcome.Started} answers were not the bucket's 1 unit; no figure is reported");
        }

        var run = outcome.ToRun(new Dictionary<string, string>
        {
            ["sku"] = sku,
            ["calls"] = outcome.Started.ToString(),
        });
        return new BenchFigure(Name, $"cluster-client floor, {MostCallers} callers", "answers/s", run.PerSecond,
            $"{MostCallers} concurrent callers of IBucketGrain.GetRemainingAsync(refresh: false) over the {buckets} buckets of a fresh " +
            "sale: the grain answers from memory (no Redis, no script, no validation). No grain answer through the cluster client " +
            "is cheaper, so its ratio to the baseline is the most the sold-out figures can reach on this machine, and the deduct " +
            "figures, which also run Redis scripts and the order pipeline, less",
            baseline.PerSecond,
            $"the {MostCallers}-caller baseline above (deduct.lua on empty keys)", null, null, Details(run, baseline));
    }

    private static async Task<BenchRun> RunGrainsAsync(IClusterClient grains, int concurrency, BenchSettings settings, IBenchProgress progress)
    {
        var sku = NewSku("s");
        await CreateSaleAsync(grains, Name, sku, Stock, settings.Shape);

        // Buy it out through the same path, with more requests than units so the grains learn it is sold out.
        progress.Status($"soldout: buying out {sku}");
        await BuyOutAsync(grains, Name, sku, Stock, settings.Shape);

        var other = new System.Collections.Concurrent.ConcurrentDictionary<PurchaseOutcome, long>();
        var outcome = await LoadRunner.RunAsync(concurrency, settings, async (_, n) =>
        {
            var result = await PurchaseAsync(grains, sku, n, "r", settings.Shape);
            if (result.Outcome == PurchaseOutcome.SoldOut)
            {
                return true;
            }

            other.AddOrUpdate(result.Outcome, 1, (_, c) => c + 1);
            return false;
        }, progress, $"grains, sold out, {concurrency} callers", warmStack: true);

        var status = await grains.Product(sku).GetStatusAsync(refresh: true)
            ?? throw new BenchCheckException($"soldout: the sale {sku} has no status");
        if (status.Sold != Stock || outcome.Succeeded != outcome.Started)
        {
            throw new BenchCheckException(
                $"soldout {sku}: {status.Sold} sold of {Stock}; {outcome.Succeeded} of {outcome.Started} calls answered sold out " +
                $"({string.Join(", ", other.Select(kv => $"{kv.Key} {kv.Value}"))}); no figure is reported");
        }

        return outcome.ToRun(new Dictionary<string, string>
        {
            ["sku"] = sku,
            ["calls"] = outcome.Started.ToString(),
            ["sold out answers"] = outcome.Succeeded.ToString(),
            ["sold (Redis)"] = status.Sold.ToString(),
        });
    }

    private static async Task<BenchRun> RunRawAsync(IDatabase db, int concurrency, BenchSettings settings, IBenchProgress progress)
    {
        var sku = NewSku("t");
        await SeedRawStockAsync(db, sku, new long[settings.Shape.Buckets]);

        var outcome = await LoadRunner.RunAsync(concurrency, settings, async (_, n) =>
        {
            var result = await DeductRawAsync(db, sku, n, settings.Shape.Buckets);
            // 0: not enough stock, the refusal this scenario counts.
            return result.Length == 2 && result[1].Resp2Type == ResultType.Integer && (long)result[1] == 0;
        }, progress, $"raw Lua, sold out, {concurrency} callers");

        var (left, logged) = await TallyRawStockAsync(db, sku, settings.Shape.Buckets);
        await DeleteRawStockAsync(db, sku, settings.Shape.Buckets);

        if (left != 0 || logged != 0 || outcome.Succeeded != outcome.Started)
        {
            throw new BenchCheckException(
                $"soldout raw {sku}: stock {left}, {logged} log entries, {outcome.Succeeded} of {outcome.Started} refused; no figure is reported");
        }

        return outcome.ToRun(new Dictionary<string, string>
        {
            ["sku"] = sku,
            ["calls"] = outcome.Started.ToString(),
            ["refused"] = outcome.Succeeded.ToString(),
        });
    }
}
