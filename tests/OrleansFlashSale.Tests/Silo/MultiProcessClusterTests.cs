using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Xunit.Abstractions;

namespace OrleansFlashSale.Tests;

/// <summary>
/// Three silo processes and two gateway processes started by <c>./flashsale up</c>, as an operator starts them,
/// stopped (processes only; the services stay) when the collection ends.
/// </summary>
public sealed class MultiProcessClusterFixture : IAsyncLifetime
{
    public const int Silos = 3;
    public const int Gateways = 2;

    public HttpClient[] GatewayClients { get; private set; } = [];

    public async Task InitializeAsync()
    {
        await FlashSaleScript.RunAsync(TimeSpan.FromMinutes(10), "up", "--silos", Silos.ToString(), "--gateways", Gateways.ToString());
        var token = Require("FLASHSALE_ADMIN_TOKEN");
        GatewayClients = Enumerable.Range(1, Gateways).Select(j =>
        {
            var client = new HttpClient { BaseAddress = FlashSaleScript.GatewayUrl(j), Timeout = TimeSpan.FromSeconds(60) };
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            return client;
        }).ToArray();
    }

    public async Task DisposeAsync()
    {
        foreach (var client in GatewayClients)
        {
            client.Dispose();
        }

        await FlashSaleScript.RunAsync(TimeSpan.FromMinutes(5), "down", "--apps");
    }

    private static string Require(string name) =>
        Environment.GetEnvironmentVariable(name) is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException($"{name} is not set: run this with ./flashsale test --cluster");
}

[CollectionDefinition(Name)]
public sealed class MultiProcessClusterCollection : ICollectionFixture<MultiProcessClusterFixture>
{
    public const string Name = "multi-process-cluster";
}

[Trait("Category", "Cluster")]
[Collection(MultiProcessClusterCollection.Name)]
public sealed class MultiProcessClusterTests(MultiProcessClusterFixture cluster, ITestOutputHelper output)
{
    private const int Buckets = 8;
    private const int Buyers = 48;

    /// <summary>
    /// Silo 2 is SIGKILLed when a third of the stock is acknowledged. How long the membership took to declare it
    /// dead and how long purchases paused are printed, not asserted.
    /// </summary>
    [Fact]
    public async Task Killing_a_silo_process_mid_sale_loses_no_acknowledged_order_and_does_not_oversell()
    {
        var killedEndpoint = $"127.0.0.1:{FlashSaleScript.SiloPort(2)}";
        double declaredDeadAt = -1;
        var sale = await RunSaleAsync(stock: 1500, pause: TimeSpan.Zero, async probe =>
        {
            await probe.Acknowledged(1500 / 3);
            await FlashSaleScript.RunAsync(TimeSpan.FromMinutes(1), "kill", "silo", "2");
            probe.Mark("silo-2 SIGKILLed");
            // Until the membership marks the killed silo Dead, its grains cannot be activated elsewhere.
            while (await MemberStatusAsync(cluster.GatewayClients[0], killedEndpoint) != "Dead")
            {
                Assert.True(probe.Elapsed < TimeSpan.FromMinutes(5), "the killed silo was never declared dead");
                await Task.Delay(250);
            }

            declaredDeadAt = probe.Mark("silo-2 declared Dead in the membership");
        });

        var killedAt = sale.Events[0].At;
        var after = sale.SuccessTimes.Where(t => t > killedAt).Order().ToArray();
        var gap = after.Prepend(killedAt).Zip(after, (a, b) => b - a).DefaultIfEmpty(0).Max();
        output.WriteLine($"  membership declared silo-2 Dead {declaredDeadAt - killedAt:F1} s after the kill");
        output.WriteLine($"  first acknowledged purchase after the kill: {(after.Length > 0 ? $"{after[0] - killedAt:F1} s" : "none")}; " +
            $"longest gap between acknowledgements after the kill: {gap:F1} s; last unit sold {sale.SuccessTimes.Max() - killedAt:F1} s after the kill");
    }

    /// <summary>
    /// Silo 3 is stopped gracefully (SIGTERM through <c>./flashsale scale silos 2</c>, which returns once it has left
    /// the membership) when a sixth of the stock is acknowledged, then started again with <c>scale silos 3</c>:
    /// its grains move to the other silos and back without losing or doubling a unit.
    /// </summary>
    [Fact]
    public async Task Scaling_silos_down_and_up_mid_sale_loses_no_acknowledged_order_and_does_not_oversell()
    {
        // Buyers paced (at most 80 purchases/s) so that the sale is still running when silo 3 is back: each step takes
        // tens of seconds on a loaded machine.
        var sale = await RunSaleAsync(stock: 6000, pause: TimeSpan.FromMilliseconds(600), async probe =>
        {
            await probe.Acknowledged(6000 / 6);
            probe.Mark("scale silos 2 started");
            await FlashSaleScript.RunAsync(TimeSpan.FromMinutes(3), "scale", "silos", "2");
            probe.Mark("silo-3 has left the membership");
            await FlashSaleScript.RunAsync(TimeSpan.FromMinutes(3), "scale", "silos", "3");
            probe.Mark("silo-3 is back and ready");
        });

        var stopping = sale.Events[0].At;
        var left = sale.Events[1].At;
        var during = sale.SuccessTimes.Count(t => t >= stopping && t <= left);
        var back = sale.Events[2].At;
        output.WriteLine($"  graceful stop took {left - stopping:F1} s, with {during} purchases acknowledged meanwhile; " +
            $"{sale.SuccessTimes.Count(t => t > back)} purchases acknowledged after silo-3 was back");
    }

    /// <summary>
    /// A sale of <paramref name="stock"/> units (one per buyer, each buyer task waiting <paramref name="pause"/> between
    /// purchases) runs through both gateways while
    /// <paramref name="disrupt"/> acts on the cluster. Buyers whose call failed retry the same request id until they
    /// get a definite answer, as the API tells them to. Exactly the stock must be acknowledged, every acknowledged
    /// order must reach MySQL, and <c>./flashsale verify</c> must find no drift.
    /// </summary>
    private async Task<SaleRun> RunSaleAsync(int stock, TimeSpan pause, Func<SaleProbe, Task> disrupt)
    {
        // Every test starts from 3 silos and 2 gateways: the previous one may have killed or stopped one.
        await FlashSaleScript.RunAsync(TimeSpan.FromMinutes(10), "up", "--silos", MultiProcessClusterFixture.Silos.ToString(),
            "--gateways", MultiProcessClusterFixture.Gateways.ToString());
        var gateways = cluster.GatewayClients;
        var sku = "mp-" + Guid.NewGuid().ToString("N")[..12];
        using (var created = await gateways[0].PostAsJsonAsync("/api/sales", new { sku, stock, buckets = Buckets, perUserLimit = 1 }))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        var probe = new SaleProbe();
        var acknowledged = new ConcurrentDictionary<string, string>(); // request id -> order id
        var answers = new ConcurrentDictionary<string, int>();
        long next = -1, soldOutAnswers = 0, retries = 0;

        async Task BuyAsync(long n)
        {
            var request = new { userId = $"u{n}", quantity = 1, requestId = $"{sku}-r{n}" };
            var attempt = 0;
            var deadline = Stopwatch.StartNew();
            while (true)
            {
                // Alternating gateways per request and per retry: both must serve the whole sale.
                var gateway = gateways[(int)((n + attempt) % gateways.Length)];
                try
                {
                    using var response = await gateway.PostAsJsonAsync($"/api/sales/{sku}/purchases", request);
                    var body = await response.Content.ReadFromJsonAsync<JsonElement>();
                    if (response.StatusCode is HttpStatusCode.Created or HttpStatusCode.OK)
                    {
                        var orderId = body.GetProperty("orderId").GetString()!;
                        Assert.Equal(orderId, acknowledged.GetOrAdd(request.requestId, orderId));
                        answers.AddOrUpdate("acknowledged", 1, (_, c) => c + 1);
                        probe.Acknowledge();
                        return;
                    }

                    var code = body.TryGetProperty("code", out var c) ? c.GetString() : null;
                    if (response.StatusCode == HttpStatusCode.Conflict)
                    {
                        answers.AddOrUpdate(code ?? "conflict", 1, (_, x) => x + 1);
                        if (code == "sold_out")
                        {
                            Interlocked.Increment(ref soldOutAnswers);
                        }

                        return;
                    }

                    Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, $"unexpected {(int)response.StatusCode} {code}");
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                {
                    // The gateway did not answer in time: the outcome is unknown, so the same request id is retried.
                }

                Assert.True(deadline.Elapsed < TimeSpan.FromMinutes(3), $"request {request.requestId} got no definite answer within 3 minutes");
                attempt++;
                Interlocked.Increment(ref retries);
                await Task.Delay(200);
            }
        }

        async Task BuyerAsync()
        {
            // New buyers keep coming until the sale has answered "sold out" a few times.
            while (Interlocked.Read(ref soldOutAnswers) < 20)
            {
                var n = Interlocked.Increment(ref next);
                Assert.True(n < stock * 10, "the sale never sold out");
                await BuyAsync(n);
                if (pause > TimeSpan.Zero)
                {
                    await Task.Delay(pause);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, Buyers).Select(_ => BuyerAsync()).Append(disrupt(probe)));

        // Exactly the stock was acknowledged, each unit once (one unit per buyer, distinct buyers).
        Assert.Equal(stock, acknowledged.Count);
        Assert.Equal(stock, acknowledged.Values.Distinct().Count());

        using (var status = await gateways[1].GetAsync($"/api/sales/{sku}"))
        {
            var sale = await status.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal(0, sale.GetProperty("remaining").GetInt64());
            Assert.Equal(stock, sale.GetProperty("sold").GetInt64());
        }

        // Every acknowledged order reaches MySQL (the check-back finds those whose commit message died with a silo).
        await TestDb.WaitUntilAsync(
            async () => await TestDb.ScalarAsync("SELECT COUNT(*) FROM orders WHERE sku = @sku", ("@sku", sku)) == stock,
            TimeSpan.FromMinutes(3));
        Assert.True(acknowledged.Values.ToHashSet().SetEquals(await OrderIdsAsync(sku)), "MySQL holds other orders than those acknowledged");

        // `./flashsale verify` exits 0 only when Redis, JetStream and MySQL agree.
        await TestDb.WaitUntilAsync(async () => await FlashSaleScript.TryRunAsync(TimeSpan.FromMinutes(2), "verify", sku) == 0, TimeSpan.FromMinutes(2));

        output.WriteLine($"{sku}: {MultiProcessClusterFixture.Silos} silos, {gateways.Length} gateways, stock {stock}, {Buyers} concurrent buyers, " +
            $"sold out at {probe.SuccessTimes.Max():F1} s; retries {retries}; answers {string.Join(", ", answers.Select(kv => $"{kv.Key} {kv.Value}"))}");
        foreach (var (what, at, units) in probe.Events)
        {
            output.WriteLine($"  {at,6:F1} s  {what} ({units} units acknowledged)");
        }

        return new SaleRun([.. probe.Events], [.. probe.SuccessTimes]);
    }

    private sealed record SaleRun(IReadOnlyList<(string What, double At, int Units)> Events, IReadOnlyList<double> SuccessTimes);

    /// <summary>What a disruption sees of the running sale: the clock, the acknowledged count, a log of its steps.</summary>
    private sealed class SaleProbe
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly ConcurrentQueue<(string, double, int)> _events = new();
        private readonly ConcurrentBag<double> _successTimes = [];
        private readonly ConcurrentDictionary<int, TaskCompletionSource> _thresholds = new();
        private int _acknowledged;

        public TimeSpan Elapsed => _clock.Elapsed;

        public IEnumerable<(string What, double At, int Units)> Events => _events;

        public IEnumerable<double> SuccessTimes => _successTimes;

        /// <summary>Called once per request whose purchase was acknowledged.</summary>
        public void Acknowledge()
        {
            _successTimes.Add(_clock.Elapsed.TotalSeconds);
            var total = Interlocked.Increment(ref _acknowledged);
            foreach (var (threshold, reached) in _thresholds)
            {
                if (total >= threshold)
                {
                    reached.TrySetResult();
                }
            }
        }

        /// <summary>Completes once at least <paramref name="units"/> purchases are acknowledged.</summary>
        public Task Acknowledged(int units)
        {
            var reached = _thresholds.GetOrAdd(units, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
            if (Volatile.Read(ref _acknowledged) >= units)
            {
                reached.TrySetResult();
            }

            return reached.Task;
        }

        public double Mark(string what)
        {
            var at = _clock.Elapsed.TotalSeconds;
            _events.Enqueue((what, at, Volatile.Read(ref _acknowledged)));
            return at;
        }
    }

    private static async Task<string?> MemberStatusAsync(HttpClient gateway, string endpoint)
    {
        try
        {
            var body = await gateway.GetFromJsonAsync<JsonElement>("/api/admin/cluster");
            // The newest generation at that endpoint is the incarnation the test killed.
            return body.GetProperty("members").EnumerateArray()
                .Where(m => m.GetProperty("endpoint").GetString() == endpoint)
                .OrderByDescending(m => m.GetProperty("generation").GetInt32())
                .Select(m => m.GetProperty("status").GetString())
                .FirstOrDefault();
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    private static async Task<HashSet<string>> OrderIdsAsync(string sku)
    {
        await using var connection = new MySqlConnector.MySqlConnection(TestStack.MySql);
        await connection.OpenAsync();
        await using var command = new MySqlConnector.MySqlCommand("SELECT order_id FROM orders WHERE sku = @sku", connection);
        command.Parameters.AddWithValue("@sku", sku);
        await using var reader = await command.ExecuteReaderAsync();
        var ids = new HashSet<string>();
        while (await reader.ReadAsync())
        {
            ids.Add(reader.GetString(0));
        }

        return ids;
    }
}

/// <summary>
/// Runs <c>./flashsale</c> of this checkout with this process's environment, so the FLASHSALE_* variables that chose
/// the stack also choose the processes' ports and state folder.
/// </summary>
public static class FlashSaleScript
{
    private static readonly Lazy<string> Script = new(FindScript);

    /// <summary>Gateway j's URL: FLASHSALE_GATEWAY_PORT + 2(j-1), the rule of deploy/local/processes.sh.</summary>
    public static Uri GatewayUrl(int j) => new($"http://127.0.0.1:{PortVariable("FLASHSALE_GATEWAY_PORT", 5080) + (2 * (j - 1))}");

    /// <summary>Silo i's silo-to-silo port: FlashSale__Silo__SiloPort + i-1, the rule of deploy/local/processes.sh.</summary>
    public static int SiloPort(int i) => PortVariable("FlashSale__Silo__SiloPort", 11111) + i - 1;

    public static async Task RunAsync(TimeSpan timeout, params string[] args)
    {
        var (code, text) = await ExecuteAsync(timeout, args);
        if (code != 0)
        {
            throw new InvalidOperationException($"./flashsale {string.Join(' ', args)} exited with {code}: {text}");
        }
    }

    public static async Task<int> TryRunAsync(TimeSpan timeout, params string[] args) => (await ExecuteAsync(timeout, args)).Code;

    private static async Task<(int Code, string Text)> ExecuteAsync(TimeSpan timeout, string[] args)
    {
        var start = new ProcessStartInfo(Script.Value) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        // The test run has just built the binaries the processes run; a rebuild would fight over the same files.
        start.Environment["FLASHSALE_REBUILD"] = "0";
        // A quick check-back, so orders whose commit message died with the killed silo reach MySQL within seconds.
        start.Environment["FlashSale__Nats__TransactionTimeout"] = "00:00:02";
        start.Environment["FlashSale__Nats__CheckInterval"] = "00:00:02";
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {Script.Value}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout);
        await process.WaitForExitAsync(cancel.Token);
        return (process.ExitCode, await stdout + await stderr);
    }

    private static int PortVariable(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), out var port) ? port : fallback;

    private static string FindScript()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "flashsale");
            if (File.Exists(candidate) && Directory.Exists(Path.Combine(dir.FullName, "deploy")))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException($"./flashsale not found above {AppContext.BaseDirectory}");
    }
}
