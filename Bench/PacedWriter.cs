using System.Diagnostics;
using System.Text.Json;

namespace OrleansFlashSale.Bench;

/// <summary>
/// The deduct figure with the order writer paced (<see cref="IWriterPaceGrain"/>): JetStream holds the window's
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
        // Earlier runs' orders first: a pace set while the writer consumes a backlog sends what it had pulled ahead
        // back after the ack wait, which would count in this run's drain.
        progress.Status("deduct, writer paced: waiting for the writer to catch up on earlier runs");
        await WaitForWriterAsync(TimeSpan.FromMinutes(10));

        var pace = grains.GetGrain<IWriterPaceGrain>(0);
        await pace.SetAsync(OrdersPerSecond);
        try
        {
            // Every silo rereads the pace within a second.
            await Task.Delay(TimeSpan.FromSeconds(2));
            var measured = await run();
            var sku = measured.Details["sku"];
            var acknowledged = long.Parse(measured.Details["acknowledged"], System.Globalization.CultureInfo.InvariantCulture);
            var storedWhilePaced = await StoredAsync(sku);
            var drain = Stopwatch.StartNew();
            await pace.SetAsync(0);
            progress.Status($"deduct, writer paced: draining {acknowledged - storedWhilePaced:N0} orders into MySQL");
            long stored;
            while ((stored = await StoredAsync(sku)) < acknowledged)
            {
                if (drain.Elapsed > DrainLimit)
                {
                    throw new BenchCheckException($"deduct paced {sku}: {stored:N0} of {acknowledged:N0} orders in MySQL after {DrainLimit}; no figure");
                }

                await Task.Delay(200);
            }

            if (stored != acknowledged)
            {
                throw new BenchCheckException($"deduct paced {sku}: {stored:N0} orders in MySQL for {acknowledged:N0} acknowledged; no figure");
            }

            var seconds = drain.Elapsed.TotalSeconds;
            var details = new Dictionary<string, string>(measured.Details)
            {
                ["writer pace"] = $"{OrdersPerSecond:N0} orders/s during the window, full speed after it",
                ["in MySQL at the end of the window"] = storedWhilePaced.ToString("N0", System.Globalization.CultureInfo.InvariantCulture),
                ["drain (s)"] = seconds.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture),
                ["drain (orders/s)"] = ((acknowledged - storedWhilePaced) / Math.Max(seconds, 0.001)).ToString("N0", System.Globalization.CultureInfo.InvariantCulture),
            };
            return figure(measured with { Details = details });
        }
        finally
        {
            await pace.SetAsync(0);
        }
    }

    private static async Task<long> StoredAsync(string sku) => (await PersistScenario.ReadsFromEnvironment().TotalsAsync(sku)).Orders;

    /// <summary>Until the writer's durable consumer has nothing pending or unacknowledged (read from the NATS monitor).</summary>
    private static async Task WaitForWriterAsync(TimeSpan limit)
    {
        var monitor = Environment.GetEnvironmentVariable(ServiceCalls.MonitorVariable);
        if (monitor is null)
        {
            throw new BenchCheckException($"deduct paced: {ServiceCalls.MonitorVariable} is not set, so the writer's backlog cannot be read");
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
                throw new BenchCheckException($"deduct paced: the writer still has {backlog:N0} messages to store after {limit}");
            }

            await Task.Delay(500);
        }
    }
}
