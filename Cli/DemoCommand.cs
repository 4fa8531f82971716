using System.Collections.Concurrent;
using System.Diagnostics;
using Spectre.Console;

namespace OrleansFlashSale.Cli;

/// <summary>
/// Creates a sale and buys it out with many simulated users (some retrying the same request), showing progress,
/// then checks the books: sold equals stock, no user over the limit, every replay got its original order.
/// </summary>
public static class DemoCommand
{
    public static async Task<int> RunAsync(Options options)
    {
        var stock = options.Long("stock", 1000);
        var buckets = options.Int("buckets", SaleRules.DefaultBuckets);
        var limit = options.Int("limit", 2);
        var users = options.Int("users", 2000);
        var requests = options.Int("requests", 6000);
        var concurrency = options.Int("concurrency", 128);
        var requirePurchaseToken = options.Bool("purchase-tokens", false);
        if (stock < 1 || buckets < 1 || limit < 1 || users < 1 || requests < 1 || concurrency < 1)
        {
            throw new UsageException("stock, buckets, limit, users, requests and concurrency must be at least 1");
        }

        using var client = GatewayClient.FromEnvironment();
        var sku = $"demo-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Random.Shared.Next(1000):D3}";
        var buyers = new DemoBuyers(client, TokenCommand.Configured(), sku, requirePurchaseToken);
        AnsiConsole.MarkupLine($"Gateway [bold]{client.BaseAddress}[/]; creating sale [bold]{sku}[/]: stock {stock}, {buckets} buckets, limit {limit} per user; {buyers.Describe()}");
        var created = await client.SendAsync(HttpMethod.Post, "/api/sales", new { sku, stock, buckets, perUserLimit = limit, requirePurchaseToken });
        if (created.Status != 201)
        {
            return CommandLine.Print(created, 201);
        }

        var latencies = new ConcurrentBag<double>();
        var outcomes = new ConcurrentDictionary<string, int>();
        var orders = new ConcurrentDictionary<string, (string OrderId, int Quantity, string User)>();
        var replayMismatches = 0;
        var report = new DemoReport();
        var next = -1;
        var stopwatch = Stopwatch.StartNew();
        await AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .StartAsync(async ctx =>
            {
                var task = ctx.AddTask($"{requests} purchases from {users} users", maxValue: requests);
                var workers = Enumerable.Range(0, concurrency).Select(async _ =>
                {
                    int i;
                    while ((i = Interlocked.Increment(ref next)) < requests)
                    {
                        var user = $"user-{i % users}";
                        // One request in ten is a retry of an earlier request id of the same user.
                        var requestId = i >= users && i % 10 == 0 ? $"r-{i - users}" : $"r-{i}";
                        if (i >= users && i % 10 == 0)
                        {
                            user = $"user-{(i - users) % users}";
                        }

                        var quantity = 1 + (i % limit == 0 ? 1 : 0);
                        quantity = Math.Min(quantity, limit);
                        var started = Stopwatch.GetTimestamp();
                        int status;
                        System.Text.Json.JsonElement body;
                        try
                        {
                            var (headers, refused) = await buyers.HeadersAsync(user);
                            (status, body) = refused ?? await client.SendAsync(HttpMethod.Post, $"/api/sales/{sku}/purchases",
                                new { userId = user, quantity, requestId }, headers: headers);
                        }
                        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                        {
                            // A transport failure is an answer too: counted, never hidden.
                            outcomes.AddOrUpdate("transport_error", 1, (_, n) => n + 1);
                            report.Record(stopwatch.Elapsed, "transport_error");
                            task.Increment(1);
                            continue;
                        }

                        latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                        var outcome = status switch
                        {
                            201 => "created",
                            200 => "replayed",
                            _ => body.ValueKind == System.Text.Json.JsonValueKind.Object && body.TryGetProperty("code", out var c) ? c.GetString()! : $"http_{status}",
                        };
                        outcomes.AddOrUpdate(outcome, 1, (_, n) => n + 1);
                        report.Record(stopwatch.Elapsed, outcome);
                        if (status is 200 or 201)
                        {
                            var orderId = body.GetProperty("orderId").GetString()!;
                            var key = $"{user}\n{requestId}";
                            var stored = orders.GetOrAdd(key, (orderId, body.GetProperty("quantity").GetInt32(), user));
                            if (stored.OrderId != orderId)
                            {
                                Interlocked.Increment(ref replayMismatches);
                            }
                        }

                        task.Increment(1);
                    }
                });
                await Task.WhenAll(workers);
            });
        stopwatch.Stop();

        var (statusCode, sale) = await client.SendAsync(HttpMethod.Get, $"/api/sales/{sku}", null);
        if (statusCode != 200)
        {
            return CommandLine.Print((statusCode, sale), 200);
        }

        var sold = sale.GetProperty("sold").GetInt64();
        var orderUnits = orders.Values.Sum(o => (long)o.Quantity);
        var overLimit = orders.Values.GroupBy(o => o.User).Count(g => g.Sum(o => o.Quantity) > limit);
        var sorted = latencies.Order().ToArray();

        var booksBalance = sold <= stock && orderUnits == sold && overLimit == 0 && replayMismatches == 0;
        AnsiConsole.MarkupLine(booksBalance
            ? $"[green]Books balance:[/] {orderUnits} units in acknowledged orders == sold, nothing oversold, no user over the limit, every replay got its order."
            : $"[red]Books do not balance:[/] units in acknowledged orders {orderUnits}, sold {sold}, users over the limit {overLimit}, replays with another order id {replayMismatches}.");
        AnsiConsole.MarkupLine("Waiting for the pipeline to settle, then verify …");
        var (verify, settled, verifyError) = await DemoReport.VerifyAsync(client, sku);
        var resultsDir = Environment.GetEnvironmentVariable("FLASHSALE_RESULTS_DIR") is { Length: > 0 } dir ? dir : Path.Combine(Environment.CurrentDirectory, "results");
        var chart = report.DrawChart(sku, Path.Combine(resultsDir, "demo"), stopwatch.Elapsed);
        var ok = DemoReport.Print(sku, client.BaseAddress, stock, sold, outcomes, requests, stopwatch.Elapsed, sorted, verify, settled, verifyError, chart, booksBalance);
        return ok ? 0 : 1;
    }
}
