using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using StackExchange.Redis;
using static OrleansFlashSale.Bench.GrainsVsRawLua;

namespace OrleansFlashSale.Bench;

/// <summary>
/// The silo's resident memory (VmRSS of the process <c>./flashsale up</c> started): its growth over a measured
/// number of orders, extrapolated linearly to one million, and its growth per bucket grain activated. RSS is what
/// the operator pays for; it includes garbage the GC has not collected yet, so these are upper bounds, not the size
/// of the objects a grain keeps. Also Redis's <c>used_memory</c> (summed over the primaries) over the same orders:
/// what the request records, user counters, order markers and order index of a sale cost until their
/// TTL (<c>FlashSale:Deduction:RecordTtlHours</c>), for sizing <c>maxmemory</c>.
/// </summary>
public static class MemoryScenario
{
    public const string Name = "memory";
    private const int BucketsPerSale = SaleRules.MaxBuckets;

    public static async Task<IReadOnlyList<BenchFigure>> RunAsync(BenchSettings settings, IBenchProgress progress)
    {
        var pid = SiloPid();
        var orders = settings.Quick ? 20_000L : 100_000L;
        var sales = settings.Quick ? 4 : 16;
        var (redis, clusterId, serviceId) = ClusterClient.FromEnvironment();
        using var host = ClusterClient.Build(redis, clusterId, serviceId);
        await host.StartAsync();
        try
        {
            var grains = host.Services.GetRequiredService<IClusterClient>();

            // INFO is an admin command to StackExchange.Redis; this connection only reads INFO memory.
            var redisOptions = ConfigurationOptions.Parse(redis);
            redisOptions.AllowAdmin = true;
            await using var multiplexer = await ConnectionMultiplexer.ConnectAsync(redisOptions);
            var redisBefore = await RedisUsedBytesAsync(multiplexer);
            var beforeOrders = ResidentBytes(pid);
            var run = await SellOut.RunAsync(grains, Name, $"{orders:N0} orders", orders, settings.Shape, SaleModes.Redis, 256, progress);
            var afterOrders = ResidentBytes(pid);
            var redisAfter = await RedisUsedBytesAsync(multiplexer);
            var perMillion = (afterOrders - beforeOrders) * (1_000_000.0 / orders) / (1024 * 1024);
            var redisPerOrder = (redisAfter - redisBefore) / (double)orders;

            progress.Status($"memory: activating {sales * BucketsPerSale:N0} bucket grains");
            var beforeBuckets = ResidentBytes(pid);
            for (var i = 0; i < sales; i++)
            {
                var sku = NewSku("m");
                await CreateSaleAsync(grains, Name, sku, BucketsPerSale, new SaleShape(BucketsPerSale, 16));
                // The status asks every bucket for its remaining units, which activates each bucket grain.
                var status = await grains.Product(sku).GetStatusAsync(refresh: false)
                    ?? throw new BenchCheckException($"memory {sku}: the sale has no status");
                if (status.Buckets.Count != BucketsPerSale || status.Remaining != BucketsPerSale)
                {
                    throw new BenchCheckException($"memory {sku}: {status.Buckets.Count} buckets with {status.Remaining} units, " +
                        $"expected {BucketsPerSale} with one each; no figure is reported");
                }
            }

            var afterBuckets = ResidentBytes(pid);
            var grainsActivated = sales * BucketsPerSale;
            var perGrain = (afterBuckets - beforeBuckets) / (double)grainsActivated / 1024;
            var details = new Dictionary<string, string>
            {
                ["silo pid"] = pid.ToString(CultureInfo.InvariantCulture),
                ["orders processed"] = orders.ToString(CultureInfo.InvariantCulture),
                ["RSS before orders MiB"] = Mib(beforeOrders),
                ["RSS after orders MiB"] = Mib(afterOrders),
                ["bucket grains activated"] = grainsActivated.ToString(CultureInfo.InvariantCulture),
                ["RSS before buckets MiB"] = Mib(beforeBuckets),
                ["RSS after buckets MiB"] = Mib(afterBuckets),
                ["Redis used_memory before orders MiB"] = Mib(redisBefore),
                ["Redis used_memory after orders MiB"] = Mib(redisAfter),
            };
            const string none = "no baseline: measured on its own";
            return
            [
                new BenchFigure(Name, $"silo RSS per 1M orders (from {orders:N0})", "MiB", perMillion,
                    $"silo VmRSS growth while {orders:N0} orders were bought through the cluster client and persisted (verify clean), " +
                    "extrapolated linearly to 1,000,000", 0, none, null, null, details.Concat(run.Details.Select(kv => KeyValuePair.Create("orders run " + kv.Key, kv.Value))).ToDictionary()),
                new BenchFigure(Name, $"Redis memory per order (from {orders:N0})", "bytes", redisPerOrder,
                    $"growth of Redis used_memory (INFO memory, summed over the primaries) while the same {orders:N0} orders were " +
                    "bought and persisted, divided by the orders: their request records, user counters, order markers, order index " +
                    "entries and buyers-set members, kept until their TTL (the deduction log is trimmed once the orders are published)",
                    0, none, null, null, details),
                new BenchFigure(Name, "silo RSS per active bucket grain", "KiB", perGrain,
                    $"silo VmRSS growth over activating {grainsActivated:N0} bucket grains ({sales} sales of {BucketsPerSale} buckets, one " +
                    "unit each, one product grain per sale), divided by the bucket count", 0, none, null, null, details),
            ];
        }
        finally
        {
            await host.StopAsync();
        }
    }

    /// <summary>Bytes Redis has allocated for data and overhead, over every primary (one on the single-node stack).</summary>
    private static async Task<long> RedisUsedBytesAsync(IConnectionMultiplexer multiplexer)
    {
        long total = 0;
        foreach (var server in multiplexer.GetServers().Where(s => s.IsConnected && !s.IsReplica))
        {
            var memory = await server.InfoAsync("memory");
            var used = memory.SelectMany(g => g).FirstOrDefault(kv => kv.Key == "used_memory").Value
                ?? throw new BenchCheckException($"Redis {server.EndPoint} reports no used_memory");
            total += long.Parse(used, NumberStyles.None, CultureInfo.InvariantCulture);
        }

        return total > 0 ? total : throw new BenchCheckException("no connected Redis primary to read used_memory from");
    }

    private static string Mib(long bytes) => (bytes / 1024.0 / 1024.0).ToString("F1", CultureInfo.InvariantCulture);

    private static int SiloPid()
    {
        var file = Environment.GetEnvironmentVariable("FLASHSALE_SILO_PID_FILE");
        if (string.IsNullOrEmpty(file) || !File.Exists(file)
            || !int.TryParse(File.ReadAllText(file).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
        {
            throw new BenchCheckException("the silo's PID file is unknown (FLASHSALE_SILO_PID_FILE): the memory scenario needs the silo ./flashsale up started");
        }

        return pid;
    }

    private static long ResidentBytes(int pid)
    {
        // VmRSS is in kB.
        var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal))
            ?? throw new BenchCheckException($"no VmRSS for process {pid}");
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }
}
