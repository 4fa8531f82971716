using OrleansFlashSale.ClientLibrary;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OrleansFlashSale.Redis;
using StackExchange.Redis;

namespace OrleansFlashSale.Bench;

/// <summary>
/// What the scenarios comparing the grain path with deduct.lua called directly share: the sale shape, the two
/// kinds of call, and the order of the runs (all raw baselines first, then the grains through one cluster client).
/// </summary>
public static class GrainsVsRawLua
{
    public const int Users = 100_000;

    public static readonly IReadOnlyList<int> Concurrencies = [256, MostCallers];

    /// <summary>The larger of the two concurrencies every grains-vs-raw scenario runs.</summary>
    public const int MostCallers = 1024;

    public static async Task<IReadOnlyList<BenchFigure>> RunAsync(
        string scenario,
        string rawLabel,
        string grainsLabel,
        Func<IDatabase, int, Task<BenchRun>> runRaw,
        Func<IClusterClient, int, Task<BenchRun>> runGrains,
        Func<int, BenchRun, BenchRun, BenchFigure> figure,
        IBenchProgress progress,
        Func<IClusterClient, IReadOnlyDictionary<int, BenchRun>, Task<IReadOnlyList<BenchFigure>>>? extra = null)
    {
        var (redis, clusterId, serviceId) = ClusterClient.FromEnvironment();
        var baselines = new Dictionary<int, BenchRun>();
        await using (var multiplexer = await ConnectionMultiplexer.ConnectAsync(redis))
        {
            // Baselines first: the grain path feeds the order pipeline (NATS, MariaDB), whose catching up would
            // otherwise load the machine during a later baseline.
            foreach (var concurrency in Concurrencies)
            {
                progress.Status($"{scenario}: {rawLabel}, {concurrency} callers");
                baselines[concurrency] = await runRaw(multiplexer.GetDatabase(), concurrency);
            }
        }

        using var host = ClusterClient.Build(redis, clusterId, serviceId);
        progress.Status($"{scenario}: connecting the cluster client");
        await host.StartAsync();
        try
        {
            var grains = host.Services.GetRequiredService<IClusterClient>();
            var figures = new List<BenchFigure>();
            foreach (var concurrency in Concurrencies)
            {
                progress.Status($"{scenario}: {grainsLabel}, {concurrency} callers");
                figures.Add(figure(concurrency, await runGrains(grains, concurrency), baselines[concurrency]));
            }

            if (extra is not null)
            {
                figures.AddRange(await extra(grains, baselines));
            }

            return figures;
        }
        finally
        {
            await host.StopAsync();
        }
    }

    /// <summary>
    /// Creates the scenario's sale through the product grain; a refusal ends the run without a figure. Nobody pays a
    /// bench order, so each sale gets the longest payment timeout: with the default, every order of a run expires 15
    /// minutes later, and the silo's expiry sweep then returns them all to Redis while a later run on the same stack
    /// is measuring.
    /// </summary>
    public static async Task CreateSaleAsync(IClusterClient grains, string scenario, string sku, long stock, SaleShape shape,
        string mode = SaleModes.Redis)
    {
        var created = await grains.Product(sku).CreateAsync(new SaleDefinition(sku, stock, shape.Buckets, SaleRules.MaxPerUserLimit,
            null, null, SaleRules.MaxPaymentTimeoutSeconds, shape.QuotaShards, mode));
        if (created.Outcome != CreateSaleOutcome.Created)
        {
            throw new BenchCheckException($"{scenario}: the sale {sku} was not created: {created.Outcome} {created.Error}");
        }
    }

    /// <summary>
    /// Purchase number <paramref name="n"/> of one unit, by one of <see cref="Users"/> users, through the client
    /// library (<see cref="PurchaseClient"/>) as every gateway service sends it: concurrent purchases for one bucket
    /// share a grain call. <paramref name="shape"/> is the sale's, which the library reads from the product grain.
    /// </summary>
    public static Task<PurchaseResult> PurchaseAsync(IClusterClient grains, string sku, long n, string requestPrefix, SaleShape shape) =>
        grains.ServiceProvider.GetRequiredService<PurchaseClient>()
            .PurchaseAsync(new PurchaseRequest(sku, $"u{n % Users}", $"{requestPrefix}{n}", 1));

    /// <summary>
    /// deduct.lua for purchase number <paramref name="n"/>, one purchase per call, in the user's bucket: what a
    /// team without this project would call. Returns the script's whole answer ({ remaining, result }).
    /// </summary>
    public static Task<RedisResult[]> DeductRawAsync(IDatabase db, string sku, long n, int buckets) =>
        DeductRawAsync(db, sku, $"u{n % Users}", $"{sku}-{n}", $"r{n}", 1, buckets);

    /// <summary>deduct.lua for one purchase in the user's bucket (of <paramref name="buckets"/>), one call per purchase.</summary>
    public static async Task<RedisResult[]> DeductRawAsync(IDatabase db, string sku, string user,
        string orderId, string requestId, int quantity, int buckets)
    {
        var bucket = StableHash.Bucket(user, buckets);
        return (RedisResult[])(await RedisScripts.EvaluateAsync(db, RawDeduct,
            [RedisKeys.Stock(sku, bucket), RedisKeys.Log(sku, bucket), RedisKeys.OrderMarker(sku, bucket, orderId)],
            [bucket, 3600, orderId, user, requestId, quantity]))!;
    }

    /// <summary>
    /// The baseline's script: deduct.lua as it was before transactions were fenced (stock check, decrement, order
    /// marker, log entry), kept here unchanged so every run compares with the same minimal script a team would write.
    /// </summary>
    public static readonly RedisScript RawDeduct = new("raw-deduct", """
        local stock = redis.call('GET', KEYS[1])
        if not stock then
          return { -1 }
        end
        stock = tonumber(stock)
        local bucket = ARGV[1]
        local ttl = ARGV[2]
        local t = redis.call('TIME')
        local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
        local results = { 0 }
        for i = 1, #KEYS - 2 do
          local a = 2 + (i - 1) * 4
          local order_id, user_id, request_id, qty_text = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
          local qty = string.match(qty_text, '^[1-9][0-9]?[0-9]?[0-9]?[0-9]?[0-9]?[0-9]?$') and tonumber(qty_text)
          local marker = KEYS[2 + i]
          if not qty or qty > 1000000 then
            results[i + 1] = -2
          elseif redis.call('EXISTS', marker) == 1 then
            results[i + 1] = 2
          elseif stock < qty then
            results[i + 1] = 0
          else
            stock = redis.call('DECRBY', KEYS[1], qty_text)
            redis.call('SET', marker, '1', 'EX', ttl)
            results[i + 1] = redis.call('XADD', KEYS[2], '*', 'o', order_id, 'u', user_id, 'r', request_id, 'q', qty_text, 'b', bucket, 't', now)
          end
        end
        results[1] = stock
        return results
        """);

    /// <summary>The raw baselines' stock keys, one per bucket, set to <paramref name="perBucket"/>.</summary>
    public static async Task SeedRawStockAsync(IDatabase db, string sku, long[] perBucket)
    {
        for (var b = 0; b < perBucket.Length; b++)
        {
            await db.StringSetAsync(RedisKeys.Stock(sku, b), perBucket[b]);
        }
    }

    /// <summary>What a raw baseline left: units on its stock keys and entries in its deduction logs, over all buckets.</summary>
    public static async Task<(long Remaining, long Logged)> TallyRawStockAsync(IDatabase db, string sku, int buckets)
    {
        long remaining = 0, logged = 0;
        for (var b = 0; b < buckets; b++)
        {
            remaining += (long)await db.StringGetAsync(RedisKeys.Stock(sku, b));
            logged += await db.StreamLengthAsync(RedisKeys.Log(sku, b));
        }

        return (remaining, logged);
    }

    /// <summary>
    /// Deletes a raw baseline's stock keys and logs: they are not a sale, and nothing reads them afterwards (its order
    /// markers expire on their own).
    /// </summary>
    public static async Task DeleteRawStockAsync(IDatabase db, string sku, int buckets)
    {
        for (var b = 0; b < buckets; b++)
        {
            await db.KeyDeleteAsync([RedisKeys.Stock(sku, b), RedisKeys.Log(sku, b)]);
        }
    }

    /// <summary>
    /// Buys a sale of <paramref name="stock"/> units out through the grains (twice as many requests as units, so
    /// the grains learn it is sold out); a buy-out that did not acknowledge exactly the stock ends the run.
    /// </summary>
    public static async Task BuyOutAsync(IClusterClient grains, string scenario, string sku, long stock, SaleShape shape)
    {
        long bought = 0;
        var next = -1L;
        await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(async () =>
        {
            long n;
            while ((n = Interlocked.Increment(ref next)) < stock * 2)
            {
                if ((await PurchaseAsync(grains, sku, n, "buy", shape)).Outcome == PurchaseOutcome.Created)
                {
                    Interlocked.Increment(ref bought);
                }
            }
        })));
        if (bought != stock)
        {
            throw new BenchCheckException($"{scenario} {sku}: the buy-out acknowledged {bought} units of {stock}");
        }
    }

    /// <summary>Both runs' details in one dictionary, prefixed by which run they belong to.</summary>
    public static IReadOnlyDictionary<string, string> Details(BenchRun measured, BenchRun baseline) =>
        measured.Details.ToDictionary(kv => "measured." + kv.Key, kv => kv.Value)
            .Concat(baseline.Details.ToDictionary(kv => "baseline." + kv.Key, kv => kv.Value)).ToDictionary();

    internal static string NewSku(string kind) => $"bench-d{kind}-{DateTime.UtcNow:MMddHHmmss}-{Random.Shared.Next(10_000):D4}";
}
