using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OrleansFlashSale.Redis;
using StackExchange.Redis;
using static OrleansFlashSale.Bench.GrainsVsRawLua;

namespace OrleansFlashSale.Bench;

/// <summary>
/// Purchases over HTTP with wrk: the real gateway (cluster client → quota grain → buckets → Redis, plus the order
/// pipeline) against <see cref="MinimalLuaEndpoint"/>. <c>http</c> measures successful purchases on a sale that
/// never runs out; <c>http-soldout</c> measures refusals once sold out (the gateway's sold-out cache against an
/// endpoint that asks Redis every time). Both sides get the same wrk script, connections and duration.
/// </summary>
public static class HttpScenario
{
    public const string Name = "http";
    public const string SoldOutName = "http-soldout";
    private const int Connections = 128;
    private const long SoldOutStock = 1_000;

    private static string GatewayUrl() =>
        Environment.GetEnvironmentVariable("FLASHSALE_GATEWAY_URL") is { Length: > 0 } url
            ? url
            : throw new UsageException("FLASHSALE_GATEWAY_URL is not set: run the benchmark through ./flashsale bench");

    public static async Task<IReadOnlyList<BenchFigure>> RunAsync(BenchSettings settings, IBenchProgress progress, bool soldOut)
    {
        Wrk.EnsureInstalled();
        var gateway = GatewayUrl();
        var (redis, clusterId, serviceId) = ClusterClient.FromEnvironment();
        var scenario = soldOut ? SoldOutName : Name;
        WrkRun baseline;
        await using (var multiplexer = await ConnectionMultiplexer.ConnectAsync(redis))
        await using (var endpoint = await MinimalLuaEndpoint.StartAsync(multiplexer, settings.Shape.Buckets))
        {
            // The baseline first, as in the other scenarios: the gateway's order pipeline would load the machine after.
            baseline = await RunBaselineAsync(multiplexer.GetDatabase(), endpoint.Url, scenario, soldOut, settings, progress);
        }

        using var host = ClusterClient.Build(redis, clusterId, serviceId);
        await host.StartAsync();
        WrkRun measured;
        WrkRun? paced = null;
        try
        {
            var grains = host.Services.GetRequiredService<IClusterClient>();
            measured = await RunGatewayAsync(grains, gateway, scenario, soldOut, settings, progress);
            // The default sale only, as in deduct: the same run with the order writer paced, and its drain.
            if (!soldOut && settings.Sales is null)
            {
                await using var pace = await PacedWriter.StartAsync(grains, scenario, progress);
                var run = await RunGatewayAsync(grains, gateway, scenario, soldOut, settings, progress);
                var sku = run.Run.Details["sku"];
                var drain = await pace.LiftAndDrainAsync(sku, async () =>
                    (await grains.Product(sku).GetStatusAsync(refresh: true))?.Sold
                    ?? throw new BenchCheckException($"{scenario}: the sale {sku} has no status"));
                paced = run with { Run = run.Run.WithDetails(drain) };
            }
        }
        finally
        {
            await host.StopAsync();
        }

        var unit = soldOut ? "rejections/s" : "purchases/s";
        var baselineHow =
            "the same wrk script against a minimal ASP.NET endpoint in the bench process (Kestrel, loopback) that runs deduct.lua " +
            $"for the user's bucket ({settings.Shape.Buckets} stock keys) over one shared ConnectionMultiplexer, one call per request, request id " +
            "as order id; no quota/limit, no order pipeline" + (soldOut ? ", stock keys at 0 so every request asks Redis and is refused" : "");
        BenchFigure Figure(WrkRun run, bool writerPaced) =>
            new(scenario, $"{Connections} connections, {settings.Shape.Buckets} buckets" + (writerPaced ? ", writer paced" : "") +
                $", p99 {run.Wrk.P99Ms:F1} vs {baseline.Wrk.P99Ms:F1} ms", unit,
                run.Run.PerSecond,
                soldOut
                    ? $"wrk ({Connections} connections, 2 threads, new user and request id per request) posting purchases to the gateway " +
                      $"for a sale of {SoldOutStock:N0} units bought out beforehand; every answer must be 409 sold_out (the gateway's " +
                      "sold-out cache answers new buyers)"
                    : $"wrk ({Connections} connections, 2 threads, {Users:N0} users, new request id per request) posting purchases " +
                      $"to the gateway (client library → home bucket grain, one purchase.lua per batch, of {settings.Shape.Buckets} buckets → Redis), " +
                      (writerPaced
                          ? $"order writer paced at {PacedWriter.OrdersPerSecond:N0} orders/s (JetStream holds the rest; see the drain in the details); "
                          : "order writer running at full speed; ") +
                      "every answer must be 201 and units sold == 201s (+ at most the requests wrk abandoned at the end)",
                baseline.Run.PerSecond, baselineHow,
                soldOut ? 2 : 0.6, null, Details(run.Run, baseline.Run),
                TargetCondition: soldOut ? null : "p99 ≤ 2× baseline's, CPU ≤ 150 µs, Redis ≤ 8 cmds, JetStream ≤ 0.2 calls per purchase",
                TargetConditionMet: soldOut ? null : run.Wrk.P99Ms <= 2 * baseline.Wrk.P99Ms
                    && Cost(run.Run, "cpu µs/op all") <= 150 && Cost(run.Run, "redis cmds/op") <= 8
                    && Cost(run.Run, "jetstream api/op") <= 0.2);

        var figures = new List<BenchFigure> { Figure(measured, writerPaced: false) };
        if (paced is not null)
        {
            figures.Add(Figure(paced, writerPaced: true));
        }

        if (soldOut)
        {
            // No target: the ceiling that the refusal figure above is up against, measured in the same run.
            var floor = await RunFloorAsync(gateway, settings, progress);
            figures.Add(new BenchFigure(scenario, "gateway floor: unrouted POST, 404", "answers/s", floor.Run.PerSecond,
                $"the same wrk script and connections posting to {FloorPath}, which no endpoint serves: the gateway answers a " +
                "problem+json 404 from its middleware alone (no body read, no cache, no grain). No refusal computed by the " +
                "gateway can be cheaper, so its ratio is the most the figure above can reach on this machine",
                baseline.Run.PerSecond, baselineHow, null, null, Details(floor.Run, baseline.Run)));
        }

        return figures;
    }

    private const string FloorPath = "/bench/unrouted";

    /// <summary>The gateway's cheapest answer under the same load: a 404 of its middleware.</summary>
    private static async Task<WrkRun> RunFloorAsync(string url, BenchSettings settings, IBenchProgress progress)
    {
        progress.Status($"{SoldOutName}: wrk against an unrouted path of the gateway, {settings.Measure.TotalSeconds:F0} s");
        var run = await Wrk.RunAsync(url, FloorPath, NewSku("hf"), Users, Connections, settings.Measure);
        var wrong = run.Statuses.Where(kv => kv.Key != 404).Sum(kv => kv.Value);
        if (wrong > 0 || run.SocketErrors > 0 || run.Count(404) == 0)
        {
            throw new BenchCheckException($"{SoldOutName} gateway floor: {run.Count(404)} answers 404, {wrong} other answers " +
                $"({string.Join(", ", run.Statuses.Select(kv => $"{kv.Key}: {kv.Value}"))}), {run.SocketErrors} socket errors; no figure is reported");
        }

        return new WrkRun(new BenchRun(run.Count(404), run.Duration, new Dictionary<string, string>
        {
            ["path"] = FloorPath,
            ["requests (measured run)"] = run.Requests.ToString(),
            ["404 answers (measured run)"] = run.Count(404).ToString(),
            ["p50 ms"] = run.P50Ms.ToString("F2"),
            ["p99 ms"] = run.P99Ms.ToString("F2"),
        }), run);
    }

    private sealed record WrkRun(BenchRun Run, Wrk.Result Wrk);

    // Units gone from the sale over the warm-up and the measured run: every purchase is of one unit, so also its orders.
    private const string SoldKey = "units sold (warm-up + measured)";

    private static async Task<WrkRun> RunBaselineAsync(IDatabase db, string url, string scenario, bool soldOut,
        BenchSettings settings, IBenchProgress progress)
    {
        var sku = NewSku(soldOut ? "hz" : "hr");
        var perBucket = soldOut ? new long[settings.Shape.Buckets] : SaleRules.Split(SaleRules.MaxStock, settings.Shape.Buckets);
        await SeedRawStockAsync(db, sku, perBucket);

        try
        {
            var path = MinimalLuaEndpoint.PurchasePath(sku);
            progress.Status($"{scenario}: wrk warm-up against the minimal Lua endpoint");
            var warm = await Wrk.RunAsync(url, path, $"{sku}w", Users, Connections, settings.Warmup);
            progress.Status($"{scenario}: wrk against the minimal Lua endpoint, {settings.Measure.TotalSeconds:F0} s");
            var run = await Wrk.RunAsync(url, path, $"{sku}m", Users, Connections, settings.Measure);
            var (remaining, logged) = await TallyRawStockAsync(db, sku, settings.Shape.Buckets);
            var sold = perBucket.Sum() - remaining;

            return new WrkRun(Check(scenario + " baseline", sku, soldOut, warm, run, sold, logged), run);
        }
        finally
        {
            await DeleteRawStockAsync(db, sku, settings.Shape.Buckets);
        }
    }

    private static async Task<WrkRun> RunGatewayAsync(IClusterClient grains, string url, string scenario, bool soldOut,
        BenchSettings settings, IBenchProgress progress)
    {
        var sku = NewSku(soldOut ? "hs" : "hg");
        var stock = soldOut ? SoldOutStock : SaleRules.MaxStock;
        await CreateSaleAsync(grains, scenario, sku, stock, settings.Shape);
        if (soldOut)
        {
            progress.Status($"{scenario}: buying out {sku}");
            await BuyOutAsync(grains, scenario, sku, stock, settings.Shape);
        }

        var path = MinimalLuaEndpoint.PurchasePath(sku);
        progress.Status($"{scenario}: wrk warm-up against the gateway");
        var warm = await Wrk.RunAsync(url, path, $"{sku}w", Users, Connections, settings.GatewayWarmup);
        progress.Status($"{scenario}: wrk against the gateway, {settings.Measure.TotalSeconds:F0} s");
        var run = await Wrk.RunAsync(url, path, $"{sku}m", Users, Connections, settings.Measure);
        var status = await grains.Product(sku).GetStatusAsync(refresh: true)
            ?? throw new BenchCheckException($"{scenario}: the sale {sku} has no status");
        var sold = soldOut ? status.Sold - SoldOutStock : status.Sold;
        return new WrkRun(Check(scenario + " gateway", sku, soldOut, warm, run, sold, logged: null), run);
    }

    /// <summary>
    /// The books of one side: every answer is the expected status, no socket errors, and the units gone match the
    /// 201s. wrk drops the requests still in flight when its time is up (at most one per connection and run), and
    /// the server may have served them, so up to that many units more than the 201s counted are accepted.
    /// </summary>
    private static BenchRun Check(string what, string sku, bool soldOut, Wrk.Result warm, Wrk.Result run, long sold, long? logged)
    {
        var expected = soldOut ? 409 : 201;
        var answered = warm.Count(expected) + run.Count(expected);
        var wrong = warm.Statuses.Concat(run.Statuses).Where(kv => kv.Key != expected).Sum(kv => kv.Value);
        var created = soldOut ? 0 : answered;
        var abandoned = soldOut ? 0 : 2 * Connections;
        var problems = new List<string>();
        if (wrong > 0)
        {
            problems.Add($"{wrong} answers other than {expected} ({string.Join(", ", run.Statuses.Select(kv => $"{kv.Key}: {kv.Value}"))})");
        }

        if (warm.SocketErrors + run.SocketErrors > 0)
        {
            problems.Add($"{warm.SocketErrors + run.SocketErrors} socket errors or timeouts");
        }

        if (sold < created || sold > created + abandoned)
        {
            problems.Add($"{sold} units gone for {created} purchases acknowledged");
        }

        if (logged is { } l && l != sold)
        {
            problems.Add($"{l} log entries for {sold} units gone");
        }

        if (run.Count(expected) == 0)
        {
            problems.Add("nothing answered in the measured run");
        }

        if (problems.Count > 0)
        {
            throw new BenchCheckException($"{what} {sku}: {string.Join("; ", problems)}; no figure is reported");
        }

        return new BenchRun(run.Count(expected), run.Duration, new Dictionary<string, string>
        {
            ["sku"] = sku,
            ["requests (measured run)"] = run.Requests.ToString(),
            [$"{expected} answers (measured run)"] = run.Count(expected).ToString(),
            [SoldKey] = sold.ToString(),
            ["p50 ms"] = run.P50Ms.ToString("F2"),
            ["p99 ms"] = run.P99Ms.ToString("F2"),
        }.Concat(run.Costs ?? new Dictionary<string, string>()).ToDictionary());
    }

    /// <summary>A cost the run measured (<see cref="LoadRunner.Outcome.CpuDetails"/>, <see cref="ServiceCalls"/>); infinite when it was not measured.</summary>
    private static double Cost(BenchRun run, string key) =>
        run.Details.TryGetValue(key, out var text)
        && double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var value)
            ? value
            : double.PositiveInfinity;
}
