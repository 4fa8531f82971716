using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OrleansFlashSale.Grains.Redis;
using StackExchange.Redis;

namespace OrleansFlashSale.Client.Cli.Bench;

/// <summary>
/// Successful deductions per second through the cluster client → quota grain → bucket grains → Redis, against the
/// same deduct.lua called directly, one purchase per call, from this process with one shared multiplexer. The sale
/// never runs out and the per-user limit is never reached, so every call should succeed; each run is checked
/// (units sold == units acknowledged) before its figure counts.
/// </summary>
public sealed class DeductScenario
{
    public const string Name = "deduct";
    public const int Buckets = 16;
    public const int QuotaShards = SaleRules.DefaultQuotaShards;
    public const int Users = 100_000;

    // The largest stock a sale may have: no run at these rates comes near it.
    private const long Stock = SaleRules.MaxStock;

    private static readonly int[] Concurrencies = [256, 1024];

    private readonly string _redis;
    private readonly string _clusterId;
    private readonly string _serviceId;

    private DeductScenario(string redis, string clusterId, string serviceId)
    {
        _redis = redis;
        _clusterId = clusterId;
        _serviceId = serviceId;
    }

    public static DeductScenario FromEnvironment()
    {
        var (redis, clusterId, serviceId) = ClusterClient.FromEnvironment();
        return new DeductScenario(redis, clusterId, serviceId);
    }

    public async Task<IReadOnlyList<BenchFigure>> RunAsync(BenchSettings settings, IBenchProgress progress)
    {
        var baselines = new Dictionary<int, BenchRun>();
        await using (var multiplexer = await ConnectionMultiplexer.ConnectAsync(_redis))
        {
            // Baselines first: the grain path feeds the order pipeline (NATS, MariaDB), whose catching up would
            // otherwise load the machine during a later baseline.
            foreach (var concurrency in Concurrencies)
            {
                progress.Status($"deduct: raw deduct.lua, {concurrency} callers");
                baselines[concurrency] = await RunRawAsync(multiplexer, concurrency, settings, progress);
            }
        }

        using var host = ClusterClient.Build(_redis, _clusterId, _serviceId);
        progress.Status("deduct: connecting the cluster client");
        await host.StartAsync();
        try
        {
            var grains = host.Services.GetRequiredService<IClusterClient>();
            var figures = new List<BenchFigure>();
            foreach (var concurrency in Concurrencies)
            {
                progress.Status($"deduct: cluster client → grains, {concurrency} callers");
                var measured = await RunGrainsAsync(grains, concurrency, settings, progress);
                var baseline = baselines[concurrency];
                figures.Add(new BenchFigure(Name, $"{concurrency} callers", "deductions/s", measured.PerSecond,
                    $"{concurrency} concurrent callers of IQuotaGrain.PurchaseAsync (quantity 1, {Users:N0} users, limit {SaleRules.MaxPerUserLimit:N0}) " +
                    $"through the Orleans cluster client to one silo; sale of {Stock:N0} units in {Buckets} buckets, {QuotaShards} quota shards",
                    baseline.PerSecond,
                    $"deduct.lua (single purchase per call, EVALSHA) from {concurrency} concurrent callers in the bench process, one shared " +
                    $"ConnectionMultiplexer, stock spread over the same {Buckets} bucket keys; no quota/idempotency script",
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
        var sku = NewSku("g");
        var created = await grains.Product(sku).CreateAsync(new SaleDefinition(sku, Stock, Buckets, SaleRules.MaxPerUserLimit,
            null, null, SaleRules.DefaultPaymentTimeoutSeconds, QuotaShards, SaleModes.Redis));
        if (created.Outcome != CreateSaleOutcome.Created)
        {
            throw new BenchCheckException($"deduct: the sale {sku} was not created: {created.Outcome} {created.Error}");
        }

        var rejected = new System.Collections.Concurrent.ConcurrentDictionary<PurchaseOutcome, long>();
        var outcome = await LoadRunner.RunAsync(concurrency, settings, async (_, n) =>
        {
            var user = $"u{n % Users}";
            var result = await grains.Quota(sku, GrainKeys.QuotaShard(user, QuotaShards))
                .PurchaseAsync(new PurchaseRequest(sku, user, $"r{n}", 1));
            if (result.Outcome == PurchaseOutcome.Created)
            {
                return true;
            }

            rejected.AddOrUpdate(result.Outcome, 1, (_, c) => c + 1);
            return false;
        }, progress, $"grains, {concurrency} callers");

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

        return new BenchRun(outcome.Measured, outcome.Window, details);
    }

    private static async Task<BenchRun> RunRawAsync(ConnectionMultiplexer multiplexer, int concurrency, BenchSettings settings, IBenchProgress progress)
    {
        var db = multiplexer.GetDatabase();
        var scripts = new RedisScripts();
        var sku = NewSku("r");
        var perBucket = SaleRules.Split(Stock, Buckets);
        for (var b = 0; b < Buckets; b++)
        {
            await db.StringSetAsync(RedisKeys.Stock(sku, b), perBucket[b]);
        }

        long failed = 0;
        var outcome = await LoadRunner.RunAsync(concurrency, settings, async (_, n) =>
        {
            var user = $"u{n % Users}";
            var bucket = StableHash.Bucket(user, Buckets);
            var orderId = $"{sku}-{n}";
            var result = (RedisResult[])(await RedisScripts.EvaluateAsync(db, scripts.Deduct,
                [RedisKeys.Stock(sku, bucket), RedisKeys.Log(sku, bucket), RedisKeys.OrderMarker(sku, bucket, orderId)],
                [bucket, 3600, orderId, user, $"r{n}", 1]))!;
            // A deduction answers with its log entry id ("ms-seq"); anything else is a refusal.
            if (result.Length == 2 && result[1].ToString().Contains('-', StringComparison.Ordinal))
            {
                return true;
            }

            Interlocked.Increment(ref failed);
            return false;
        }, progress, $"raw Lua, {concurrency} callers");

        long sold = 0, logged = 0;
        for (var b = 0; b < Buckets; b++)
        {
            sold += perBucket[b] - (long)await db.StringGetAsync(RedisKeys.Stock(sku, b));
            logged += await db.StreamLengthAsync(RedisKeys.Log(sku, b));
        }

        // The bench's keys are not a sale: nothing reads them afterwards (markers expire on their own).
        for (var b = 0; b < Buckets; b++)
        {
            await db.KeyDeleteAsync([RedisKeys.Stock(sku, b), RedisKeys.Log(sku, b)]);
        }

        if (sold != outcome.Succeeded || logged != outcome.Succeeded)
        {
            throw new BenchCheckException(
                $"deduct raw {sku}: {sold} units gone from the stock keys, {logged} log entries, {outcome.Succeeded} acknowledged; no figure is reported");
        }

        return new BenchRun(outcome.Measured, outcome.Window, new Dictionary<string, string>
        {
            ["sku"] = sku,
            ["calls"] = outcome.Started.ToString(),
            ["acknowledged"] = outcome.Succeeded.ToString(),
            ["refused"] = failed.ToString(),
        });
    }

    internal static string NewSku(string kind) => $"bench-d{kind}-{DateTime.UtcNow:MMddHHmmss}-{Random.Shared.Next(10_000):D4}";
}
