using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OrleansFlashSale.Grains.Redis;
using StackExchange.Redis;

namespace OrleansFlashSale.Client.Cli.Bench;

/// <summary>
/// Rejections per second once a sale is sold out: new purchase requests through the cluster client → quota grain
/// (which knows the sale is sold out and only looks up request records), against deduct.lua called directly on empty
/// bucket keys, which asks Redis every time. Each run is checked: every call answered "sold out" and nothing more
/// was sold.
/// </summary>
public sealed class SoldOutScenario
{
    public const string Name = "soldout";
    private const int Buckets = DeductScenario.Buckets;
    private const int QuotaShards = DeductScenario.QuotaShards;
    private const int Users = DeductScenario.Users;
    private const long Stock = 1_000;
    private static readonly int[] Concurrencies = [256, 1024];

    private readonly string _redis;
    private readonly string _clusterId;
    private readonly string _serviceId;

    private SoldOutScenario(string redis, string clusterId, string serviceId)
    {
        _redis = redis;
        _clusterId = clusterId;
        _serviceId = serviceId;
    }

    public static SoldOutScenario FromEnvironment()
    {
        var (redis, clusterId, serviceId) = ClusterClient.FromEnvironment();
        return new SoldOutScenario(redis, clusterId, serviceId);
    }

    public async Task<IReadOnlyList<BenchFigure>> RunAsync(BenchSettings settings, IBenchProgress progress)
    {
        var baselines = new Dictionary<int, BenchRun>();
        await using (var multiplexer = await ConnectionMultiplexer.ConnectAsync(_redis))
        {
            foreach (var concurrency in Concurrencies)
            {
                progress.Status($"soldout: raw deduct.lua on empty buckets, {concurrency} callers");
                baselines[concurrency] = await RunRawAsync(multiplexer, concurrency, settings, progress);
            }
        }

        using var host = ClusterClient.Build(_redis, _clusterId, _serviceId);
        progress.Status("soldout: connecting the cluster client");
        await host.StartAsync();
        try
        {
            var grains = host.Services.GetRequiredService<IClusterClient>();
            var figures = new List<BenchFigure>();
            foreach (var concurrency in Concurrencies)
            {
                var measured = await RunGrainsAsync(grains, concurrency, settings, progress);
                var baseline = baselines[concurrency];
                figures.Add(new BenchFigure(Name, $"{concurrency} callers", "rejections/s", measured.PerSecond,
                    $"{concurrency} concurrent callers of IQuotaGrain.PurchaseAsync with new request ids (quantity 1, {Users:N0} users) " +
                    $"after a sale of {Stock:N0} units in {Buckets} buckets was bought out through the grains; every answer must be SoldOut",
                    baseline.PerSecond,
                    $"deduct.lua (single purchase per call, EVALSHA) on {Buckets} bucket stock keys set to 0, from {concurrency} concurrent " +
                    "callers in the bench process, one shared ConnectionMultiplexer: every call asks Redis and is refused",
                    null, null,
                    measured.Details.ToDictionary(kv => "measured." + kv.Key, kv => kv.Value)
                        .Concat(baseline.Details.ToDictionary(kv => "baseline." + kv.Key, kv => kv.Value)).ToDictionary()));
            }

            return figures;
        }
        finally
        {
            await host.StopAsync();
        }
    }

    private static async Task<BenchRun> RunGrainsAsync(IClusterClient grains, int concurrency, BenchSettings settings, IBenchProgress progress)
    {
        var sku = DeductScenario.NewSku("s");
        var created = await grains.Product(sku).CreateAsync(new SaleDefinition(sku, Stock, Buckets, SaleRules.MaxPerUserLimit,
            null, null, SaleRules.DefaultPaymentTimeoutSeconds, QuotaShards, SaleModes.Redis));
        if (created.Outcome != CreateSaleOutcome.Created)
        {
            throw new BenchCheckException($"soldout: the sale {sku} was not created: {created.Outcome} {created.Error}");
        }

        // Buy it out through the same path, with more requests than units so the grains learn it is sold out.
        progress.Status($"soldout: buying out {sku}");
        long bought = 0;
        var next = -1L;
        await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(async () =>
        {
            long n;
            while ((n = Interlocked.Increment(ref next)) < Stock * 2)
            {
                var user = $"u{n % Users}";
                var result = await grains.Quota(sku, GrainKeys.QuotaShard(user, QuotaShards))
                    .PurchaseAsync(new PurchaseRequest(sku, user, $"buy{n}", 1));
                if (result.Outcome == PurchaseOutcome.Created)
                {
                    Interlocked.Increment(ref bought);
                }
            }
        })));
        if (bought != Stock)
        {
            throw new BenchCheckException($"soldout {sku}: the buy-out acknowledged {bought} units of {Stock}");
        }

        var other = new System.Collections.Concurrent.ConcurrentDictionary<PurchaseOutcome, long>();
        var outcome = await LoadRunner.RunAsync(concurrency, settings, async (_, n) =>
        {
            var user = $"u{n % Users}";
            var result = await grains.Quota(sku, GrainKeys.QuotaShard(user, QuotaShards))
                .PurchaseAsync(new PurchaseRequest(sku, user, $"r{n}", 1));
            if (result.Outcome == PurchaseOutcome.SoldOut)
            {
                return true;
            }

            other.AddOrUpdate(result.Outcome, 1, (_, c) => c + 1);
            return false;
        }, progress, $"grains, sold out, {concurrency} callers");

        var status = await grains.Product(sku).GetStatusAsync(refresh: true)
            ?? throw new BenchCheckException($"soldout: the sale {sku} has no status");
        if (status.Sold != Stock || outcome.Succeeded != outcome.Started)
        {
            throw new BenchCheckException(
                $"soldout {sku}: {status.Sold} sold of {Stock}; {outcome.Succeeded} of {outcome.Started} calls answered sold out " +
                $"({string.Join(", ", other.Select(kv => $"{kv.Key} {kv.Value}"))}); no figure is reported");
        }

        return new BenchRun(outcome.Measured, outcome.Window, new Dictionary<string, string>
        {
            ["sku"] = sku,
            ["calls"] = outcome.Started.ToString(),
            ["sold out answers"] = outcome.Succeeded.ToString(),
            ["sold (Redis)"] = status.Sold.ToString(),
        });
    }

    private static async Task<BenchRun> RunRawAsync(ConnectionMultiplexer multiplexer, int concurrency, BenchSettings settings, IBenchProgress progress)
    {
        var db = multiplexer.GetDatabase();
        var scripts = new RedisScripts();
        var sku = DeductScenario.NewSku("t");
        for (var b = 0; b < Buckets; b++)
        {
            await db.StringSetAsync(RedisKeys.Stock(sku, b), 0);
        }

        var outcome = await LoadRunner.RunAsync(concurrency, settings, async (_, n) =>
        {
            var user = $"u{n % Users}";
            var bucket = StableHash.Bucket(user, Buckets);
            var orderId = $"{sku}-{n}";
            var result = (RedisResult[])(await RedisScripts.EvaluateAsync(db, scripts.Deduct,
                [RedisKeys.Stock(sku, bucket), RedisKeys.Log(sku, bucket), RedisKeys.OrderMarker(sku, bucket, orderId)],
                [bucket, 3600, orderId, user, $"r{n}", 1]))!;
            // 0: not enough stock, the refusal this scenario counts.
            return result.Length == 2 && result[1].Resp2Type == ResultType.Integer && (long)result[1] == 0;
        }, progress, $"raw Lua, sold out, {concurrency} callers");

        long left = 0, logged = 0;
        for (var b = 0; b < Buckets; b++)
        {
            left += (long)await db.StringGetAsync(RedisKeys.Stock(sku, b));
            logged += await db.StreamLengthAsync(RedisKeys.Log(sku, b));
            await db.KeyDeleteAsync(RedisKeys.Stock(sku, b));
        }

        if (left != 0 || logged != 0 || outcome.Succeeded != outcome.Started)
        {
            throw new BenchCheckException(
                $"soldout raw {sku}: stock {left}, {logged} log entries, {outcome.Succeeded} of {outcome.Started} refused; no figure is reported");
        }

        return new BenchRun(outcome.Measured, outcome.Window, new Dictionary<string, string>
        {
            ["sku"] = sku,
            ["calls"] = outcome.Started.ToString(),
            ["refused"] = outcome.Succeeded.ToString(),
        });
    }
}
