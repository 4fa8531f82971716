using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using MySqlConnector;
using Xunit.Abstractions;

namespace OrleansFlashSale.Tests.Overload;

/// <summary>
/// A gateway with deliberately small admission limits is offered ten times the purchase rate it was just measured
/// to sustain (at most <see cref="MaxOfferedPerSecond"/>), for 30 s. It must shed the excess with 429 instead of collapsing: every request gets one of the
/// sale's ordinary answers within the client timeout, what it admitted balances to the unit in Redis and MySQL, and
/// the process's memory stays bounded. Latency is printed as a measurement, never asserted.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class OverloadTests(ClusterFixture fixture, ITestOutputHelper output)
{
    /// <summary>
    /// Few, so that the capacity stays well below half of <see cref="MaxOfferedPerSecond"/>: with 8 the gateway
    /// admitted up to 2,695 purchases/s once a bucket's transactions spanned its batches, and 4,000/s offered was no
    /// longer an overload of twice that.
    /// </summary>
    private const int Slots = 4;
    private const long Stock = 1_000_000;
    private const int Buckets = 16;
    private static readonly TimeSpan Offered = TimeSpan.FromSeconds(30);
    private static readonly int[] Expected = [200, 201, 409, 429];

    /// <summary>Far above what the admitted work needs, far below what an unbounded pile of waiting requests takes.</summary>
    private const long MemoryBoundBytes = 1L << 30;

    private const int MaxOutstanding = 20_000;

    /// <summary>
    /// The requests come from this process, which also hosts the gateway and the test cluster's silos. On two cores it
    /// answered about 6,800 requests a second when offered 8,700 (most of them refused), so above a few thousand a
    /// second the run would measure the test host, not the gateway's shedding.
    /// </summary>
    private const double MaxOfferedPerSecond = 4_000;

    [Fact]
    public async Task Ten_times_the_capacity_for_30_s_is_shed_with_429_and_what_was_admitted_balances()
    {
        await using var gateway = await TestGateway.StartAsync(fixture, new()
        {
            ["FlashSale:Gateway:Admission:MaxConcurrentPurchases"] = Slots.ToString(),
            ["FlashSale:Gateway:Admission:QueueLimit"] = (2 * Slots).ToString(),
            ["FlashSale:Gateway:Admission:QueueTimeout"] = "00:00:00.250",
            // Only the concurrency bound is under test: the buyers rotate and all come from loopback.
            ["FlashSale:Gateway:RateLimits:PerUser:TokenLimit"] = "0",
            ["FlashSale:Gateway:RateLimits:PerIp:TokenLimit"] = "0",
        });
        using var http = gateway.CreateClient(TimeSpan.FromSeconds(30));
        var sale = await fixture.CreateSaleAsync("overload", Stock, Buckets, perUserLimit: 1000);
        var run = new Run(http, sale.Sku);

        // Capacity: what the gateway admits when saturated. Four closed-loop callers per slot keep every slot busy
        // (the surplus is refused and tries again after a pause); 3 s warm-up, then 5 s counted.
        var capacity = await MeasureCapacityAsync(run);
        var rate = Math.Max(100, Math.Min(10 * capacity, MaxOfferedPerSecond));
        output.WriteLine($"capacity {capacity:F0} purchases/s admitted when saturated ({4 * Slots} callers, {Slots} slots); offering {rate:F0}/s for {Offered.TotalSeconds} s");
        // Capped or not, the load is a multiple of what the gateway admits, so shedding is what is under test.
        Assert.True(rate >= 2 * capacity, $"offering {rate:F0}/s is not at least twice the capacity of {capacity:F0}/s");

        GC.Collect();
        GC.WaitForPendingFinalizers();
        var baseline = WorkingSet();
        var peak = baseline;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                peak = Math.Max(peak, WorkingSet());
                await Task.Delay(250);
            }
        });

        run.ResetCounts();
        var clock = Stopwatch.StartNew();
        long sent = 0;
        while (clock.Elapsed < Offered)
        {
            // Open loop: requests go out on schedule whether or not earlier ones were answered.
            var due = (long)(clock.Elapsed.TotalSeconds * rate);
            for (; sent < due; sent++)
            {
                run.Start($"o{sent % 20_000}", $"ov-{sent}", measure: true);
            }

            // Shedding answers in milliseconds, so this many unanswered requests means the gateway stopped
            // answering: fail here, rather than let the pile of waiting requests take the test host's memory.
            Assert.True(run.Outstanding < MaxOutstanding, $"{run.Outstanding} requests unanswered after {clock.Elapsed.TotalSeconds:F1} s");

            await Task.Delay(5);
        }

        var sending = clock.Elapsed;
        await run.DrainAsync().WaitAsync(TimeSpan.FromSeconds(90));
        await sampling.CancelAsync();
        await sampler;

        var answers = run.Statuses.OrderBy(s => s.Key).Select(s => $"{s.Key}={s.Value}");
        output.WriteLine($"sent {sent} in {sending.TotalSeconds:F1} s ({sent / sending.TotalSeconds:F0}/s), admitted {run.Statuses.GetValueOrDefault(201) / sending.TotalSeconds:F0}/s, " +
                         $"all answered after {clock.Elapsed.TotalSeconds:F1} s; " +
                         $"answers {string.Join(", ", answers)}; transport errors {run.Unknown.Count}");
        output.WriteLine($"admitted latency p50 {run.Percentile(0.50):F0} ms, p99 {run.Percentile(0.99):F0} ms, max {run.Percentile(1):F0} ms; " +
                         $"working set {baseline >> 20} MiB before, peak {peak >> 20} MiB");

        Assert.Empty(run.Unknown);
        Assert.All(run.Statuses.Keys, status => Assert.Contains(status, Expected));
        Assert.True(run.Statuses.GetValueOrDefault(429) > 0, "nothing was refused: the load did not exceed the limits");
        Assert.True(run.Statuses.GetValueOrDefault(201) > 0, "nothing was admitted");
        Assert.Equal(0, run.ReplayMismatches);
        Assert.True(peak - baseline < MemoryBoundBytes, $"working set grew by {(peak - baseline) >> 20} MiB under overload");

        // No deduction lost or doubled: Redis sold exactly the acknowledged units, and MySQL gets exactly those orders.
        var acknowledged = run.Acknowledged.Values.ToHashSet();
        var remaining = (await fixture.RedisStockAsync(sale.Sku, Buckets)).Sum();
        Assert.Equal(acknowledged.Count, Stock - remaining);
        await TestDb.WaitUntilAsync(async () => await TestDb.ScalarAsync("SELECT COUNT(*) FROM orders WHERE sku = @sku", ("@sku", sale.Sku)) >= acknowledged.Count,
            TimeSpan.FromSeconds(120));
        Assert.Equal(acknowledged.Order(), (await MySqlOrderIdsAsync(sale.Sku)).Order());
        await fixture.AssertNoDriftAsync(sale.Sku);
    }

    private static async Task<double> MeasureCapacityAsync(Run run)
    {
        var next = 0L;
        var clock = Stopwatch.StartNew();
        long counted = 0;
        var countFrom = TimeSpan.FromSeconds(3);
        var countTo = TimeSpan.FromSeconds(8);
        await Task.WhenAll(Enumerable.Range(0, 4 * Slots).Select(async _ =>
        {
            while (clock.Elapsed < countTo)
            {
                var j = Interlocked.Increment(ref next);
                var status = await run.SendAsync($"c{j % 20_000}", $"cap-{j}", measure: false);
                if (status == 201 && clock.Elapsed > countFrom && clock.Elapsed < countTo)
                {
                    Interlocked.Increment(ref counted);
                }
                else if (status == 429)
                {
                    // A refused caller backs off briefly, as a client honouring Retry-After would (only shorter).
                    await Task.Delay(20);
                }
            }
        }));
        return counted / (countTo - countFrom).TotalSeconds;
    }

    private static long WorkingSet()
    {
        using var process = Process.GetCurrentProcess();
        return process.WorkingSet64;
    }

    private static async Task<List<string>> MySqlOrderIdsAsync(string sku)
    {
        var ids = new List<string>();
        await using var connection = new MySqlConnection(TestStack.MySql);
        await connection.OpenAsync();
        await using var command = new MySqlCommand("SELECT order_id FROM orders WHERE sku = @sku", connection);
        command.Parameters.AddWithValue("@sku", sku);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            ids.Add(reader.GetString(0));
        }

        return ids;
    }

    /// <summary>Every request and its answer; admitted purchases by request id.</summary>
    private sealed class Run(HttpClient http, string sku)
    {
        private readonly ConcurrentBag<double> _latencies = [];
        private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _outstanding;
        private int _replayMismatches;
        private volatile bool _draining;

        public ConcurrentDictionary<int, int> Statuses { get; } = new();

        public ConcurrentDictionary<string, string> Acknowledged { get; } = new();

        public ConcurrentBag<string> Unknown { get; } = [];

        public int ReplayMismatches => _replayMismatches;

        public int Outstanding => Volatile.Read(ref _outstanding);

        public void ResetCounts()
        {
            Statuses.Clear();
            _latencies.Clear();
        }

        public void Start(string user, string requestId, bool measure)
        {
            Interlocked.Increment(ref _outstanding);
            _ = CompleteAsync(user, requestId, measure);
        }

        public Task DrainAsync()
        {
            _draining = true;
            if (Volatile.Read(ref _outstanding) == 0)
            {
                _drained.TrySetResult();
            }

            return _drained.Task;
        }

        private async Task CompleteAsync(string user, string requestId, bool measure)
        {
            try
            {
                await SendAsync(user, requestId, measure);
            }
            finally
            {
                if (Interlocked.Decrement(ref _outstanding) == 0 && _draining)
                {
                    _drained.TrySetResult();
                }
            }
        }

        /// <summary>The status code, or 0 when the request failed without one (it then counts as unknown).</summary>
        public async Task<int> SendAsync(string user, string requestId, bool measure)
        {
            var started = Stopwatch.GetTimestamp();
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/sales/{sku}/purchases")
                {
                    Content = new StringContent($$"""{"userId":"{{user}}","quantity":1,"requestId":"{{requestId}}"}""", Encoding.UTF8, "application/json"),
                };
                using var response = await http.SendAsync(request);
                var status = (int)response.StatusCode;
                Statuses.AddOrUpdate(status, 1, (_, n) => n + 1);
                if (status is 200 or 201)
                {
                    var order = await response.Content.ReadFromJsonAsync<JsonElement>();
                    var orderId = order.GetProperty("orderId").GetString()!;
                    if (Acknowledged.GetOrAdd(requestId, orderId) != orderId)
                    {
                        Interlocked.Increment(ref _replayMismatches);
                    }

                    if (measure)
                    {
                        _latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                    }
                }
                else
                {
                    await response.Content.ReadAsByteArrayAsync();
                }

                return status;
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                Unknown.Add($"{requestId}: {ex.GetType().Name}");
                return 0;
            }
        }

        public double Percentile(double p)
        {
            var sorted = _latencies.Order().ToArray();
            return sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
        }
    }
}
