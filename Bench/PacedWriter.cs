using System.Diagnostics;
using System.Text.Json;

namespace OrleansFlashSale.Bench;

/// <summary>
/// Figures with the order writer paced (<see cref="IWriterPaceGrain"/>): JetStream holds the window's
/// orders and MySQL takes them at <see cref="OrdersPerSecond"/>, the seed's "the queue absorbs the burst". It is
/// reported with what it costs later: the drain, from the end of the window until MySQL holds every acknowledged
/// order of the run with the writer back at full speed. The full-speed figures of the same run stay beside it.
/// </summary>
public static class PacedWriter
{
    /// <summary>A trickle MySQL takes without noticing, far below what the grains sell.</summary>
    public const int OrdersPerSecond = 1_000;

    private static readonly TimeSpan DrainLimit = TimeSpan.FromMinutes(10);

    public static async Task<BenchFigure> RunAsync(IClusterClient grains, Func<Task<BenchRun>> run, Func<BenchRun, BenchFigure> figure,
        IBenchProgress progress)
    {
        await using var pace = await StartAsync(grains, "deduct", progress);
        var measured = await run();
        var drain = await pace.LiftAndDrainAsync(measured.Details["sku"],
            long.Parse(measured.Details["acknowledged"], System.Globalization.CultureInfo.InvariantCulture));
        return figure(measured.WithDetails(drain));
    }

    /// <summary>
    /// Waits until the writer has stored earlier runs' orders, then paces it at <see cref="OrdersPerSecond"/> until
    /// <see cref="Pace.LiftAndDrainAsync"/> or disposal.
    /// </summary>
    public static async Task<Pace> StartAsync(IClusterClient grains, string scenario, IBenchProgress progress)
    {
        // Earlier runs' orders first: a pace set while the writer consumes a backlog sends what it had pulled ahead
        // back after the ack wait, which would count in this run's drain.
        progress.Status($"{scenario}, writer paced: waiting for the writer to catch up on earlier runs");
        await WaitForWriterAsync(scenario, TimeSpan.FromMinutes(10));

        var grain = grains.GetGrain<IWriterPaceGrain>(0);
        await grain.SetAsync(OrdersPerSecond);
        var pace = new Pace(grain, scenario, progress);
        // Every silo rereads the pace within a second.
        await Task.Delay(TimeSpan.FromSeconds(2));
        return pace;
    }

    /// <summary>The writer paced for one run; disposing it puts the writer back at full speed.</summary>
    public sealed class Pace(IWriterPaceGrain grain, string scenario, IBenchProgress progress) : IAsyncDisposable
    {
        /// <summary>
        /// Puts the writer back at full speed and waits until MySQL holds the run's <paramref name="orders"/> orders of
        /// <paramref name="sku"/>: the drain, reported as details (what MySQL held when the pace was lifted, seconds,
        /// orders/s). More or fewer orders than that in the end fails the run.
        /// </summary>
        public Task<IReadOnlyDictionary<string, string>> LiftAndDrainAsync(string sku, long orders) =>
            LiftAndDrainAsync(sku, () => Task.FromResult(orders));

        /// <summary>
        /// As above, with the orders read again once MySQL has that many: requests a load generator abandoned when its
        /// time was up may still be served after it stopped, so the units sold in Redis can grow for a moment.
        /// </summary>
        public async Task<IReadOnlyDictionary<string, string>> LiftAndDrainAsync(string sku, Func<Task<long>> readOrders)
        {
            var storedWhilePaced = await StoredAsync(sku);
            var drain = Stopwatch.StartNew();
            await grain.SetAsync(0);
            var orders = await readOrders();
            progress.Status($"{scenario}, writer paced: draining {orders - storedWhilePaced:N0} orders into MySQL");
            long stored;
            while ((stored = await StoredAsync(sku)) < orders || (orders = await readOrders()) > stored)
            {
                if (drain.Elapsed > DrainLimit)
                {
                    throw new BenchCheckException($"{scenario} paced {sku}: {stored:N0} of {orders:N0} orders in MySQL after {DrainLimit}; no figure");
                }

                await Task.Delay(200);
            }

            if (stored != orders)
            {
                throw new BenchCheckException($"{scenario} paced {sku}: {stored:N0} orders in MySQL for {orders:N0} acknowledged; no figure");
            }

            var seconds = drain.Elapsed.TotalSeconds;
            var invariant = System.Globalization.CultureInfo.InvariantCulture;
            return new Dictionary<string, string>
            {
                ["writer pace"] = $"{OrdersPerSecond:N0} orders/s during the window, full speed after it",
                ["in MySQL at the end of the window"] = storedWhilePaced.ToString("N0", invariant),
                ["drain (s)"] = seconds.ToString("0.0", invariant),
                ["drain (orders/s)"] = ((orders - storedWhilePaced) / Math.Max(seconds, 0.001)).ToString("N0", invariant),
            };
        }

        public async ValueTask DisposeAsync() => await grain.SetAsync(0);
    }

    private static async Task<long> StoredAsync(string sku) => (await PersistScenario.ReadsFromEnvironment().TotalsAsync(sku)).Orders;

    /// <summary>Until the writer's durable consumer has nothing pending or unacknowledged (read from the NATS monitor).</summary>
    private static async Task WaitForWriterAsync(string scenario, TimeSpan limit)
    {
        var monitor = Environment.GetEnvironmentVariable(ServiceCalls.MonitorVariable);
        if (monitor is null)
        {
            throw new BenchCheckException($"{scenario} paced: {ServiceCalls.MonitorVariable} is not set, so the writer's backlog cannot be read");
        }

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var waited = Stopwatch.StartNew();
        while (true)
        {
            using var document = JsonDocument.Parse(await http.GetStringAsync(monitor.TrimEnd('/') + "/jsz?consumers=true"));
            var backlog = 0L;
            foreach (var account in document.RootElement.GetProperty("account_details").EnumerateArray())
            {
                foreach (var stream in account.TryGetProperty("stream_detail", out var streams) ? streams.EnumerateArray() : default)
                {
                    foreach (var consumer in stream.TryGetProperty("consumer_detail", out var consumers) ? consumers.EnumerateArray() : default)
                    {
                        if (consumer.GetProperty("name").GetString() == "orders-writer")
                        {
                            backlog += consumer.GetProperty("num_pending").GetInt64() + consumer.GetProperty("num_ack_pending").GetInt64();
                        }
                    }
                }
            }

            if (backlog == 0)
            {
                return;
            }

            if (waited.Elapsed > limit)
            {
                throw new BenchCheckException($"{scenario} paced: the writer still has {backlog:N0} messages to store after {limit}");
            }

            await Task.Delay(500);
        }
    }
}
