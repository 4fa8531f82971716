using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace OrleansFlashSale.Bench;

/// <summary>
/// The seed article's tiers on one hot SKU, each selling a fresh sale out through the cluster client with the same
/// callers: <c>database</c> mode (group deduction in MySQL), <c>redis</c> with one bucket, <c>redis</c> with 16. Each
/// must sell exactly its stock and leave verify clean; the database run is the others' baseline.
/// </summary>
public static class ModesScenario
{
    public const string Name = "modes";
    private const int Callers = 256;

    public static async Task<IReadOnlyList<BenchFigure>> RunAsync(BenchSettings settings, IBenchProgress progress)
    {
        var stock = settings.Quick ? 5_000L : 50_000L;
        var (redis, clusterId, serviceId) = ClusterClient.FromEnvironment();
        using var host = ClusterClient.Build(redis, clusterId, serviceId);
        await host.StartAsync();
        try
        {
            var grains = host.Services.GetRequiredService<IClusterClient>();
            // The redis tiers run twice: with the order writer at full speed, and paced (JetStream holds the sale's
            // orders and MySQL takes them after it; the drain is in the details). The database tier has no writer.
            var tiers = new (string Label, string Mode, int Buckets, bool Paced)[]
            {
                ("database mode", SaleModes.Database, 1, false),
                ("redis, 1 bucket", SaleModes.Redis, 1, false),
                ("redis, 16 buckets", SaleModes.Redis, 16, false),
                ("redis, 1 bucket, writer paced", SaleModes.Redis, 1, true),
                ("redis, 16 buckets, writer paced", SaleModes.Redis, 16, true),
            };
            var runs = new List<(string Label, SellOut.Result Run)>();
            foreach (var (label, mode, buckets, paced) in tiers)
            {
                // Every sale has the default shape for its bucket count: one quota shard per bucket, so each user has a
                // home bucket. The database tier keeps 16 shards: its quota grains reserve and settle in parallel.
                var shape = mode == SaleModes.Database ? new SaleShape(buckets, 16) : new SaleShape(buckets, buckets);
                if (!paced)
                {
                    runs.Add((label, await SellOut.RunAsync(grains, Name, label, stock, shape, mode, Callers, progress)));
                    continue;
                }

                await using var pace = await PacedWriter.StartAsync(grains, Name, progress);
                runs.Add((label, await SellOut.RunAsync(grains, Name, label, stock, shape, mode, Callers, progress,
                    sku => pace.LiftAndDrainAsync(sku, stock))));
            }

            var database = runs[0].Run;
            return runs.Select(r => new BenchFigure(Name, $"{r.Label}, p99 {r.Run.P99Ms:F0} ms", "purchases/s", r.Run.PerSecond,
                    $"{stock:N0} units bought out by {Callers} concurrent callers of PurchaseClient.PurchaseAsync (quantity 1, " +
                    $"{GrainsVsRawLua.Users:N0} users) through the cluster client: {r.Run.Sold:N0} sold in {r.Run.Elapsed.TotalSeconds:F1} s, " +
                    $"p50 {r.Run.P50Ms:F1} ms, p99 {r.Run.P99Ms:F1} ms of the successful calls; " +
                    (r.Run.Details.TryGetValue("drain (s)", out var drain)
                        ? $"order writer paced at {PacedWriter.OrdersPerSecond:N0} orders/s during the sell-out, then MySQL held every order {drain} s after it; "
                        : r.Run.Details["mode"] == SaleModes.Redis ? "order writer at full speed; " : "") +
                    $"verify clean {r.Run.Settled.TotalSeconds:F1} s after the sell-out" + (drain is null ? "" : "'s drain"),
                    database.PerSecond,
                    $"the database-mode run of the same stock and callers (synchronous group deduction in MySQL; p99 {database.P99Ms:F1} ms)",
                    r.Label.Contains("16", StringComparison.Ordinal) ? 2.0 : r.Label.Contains("1 bucket", StringComparison.Ordinal) ? 1.5 : null,
                    null, r.Run.Details))
                .ToList();
        }
        finally
        {
            await host.StopAsync();
        }
    }
}
