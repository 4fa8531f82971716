using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Xunit.Abstractions;

namespace OrleansFlashSale.Tests.Overload;

/// <summary>
/// The gateway is stopped and started again (same port, as a redeploy) while buyers keep buying. A buyer sees an
/// error only for a request that was in flight or sent during the restart, never a 5xx; replaying it with the same
/// request id gets a definite answer, and replaying any acknowledged request gets its original order.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class GatewayRestartTests(ClusterFixture fixture, ITestOutputHelper output)
{
    private const long Stock = 100_000;
    private const int Buckets = 8;

    [Fact]
    public async Task Restarting_the_gateway_mid_load_fails_only_in_flight_requests_and_replays_return_the_original_result()
    {
        var gateway = await TestGateway.StartAsync(fixture, new());
        await using var _ = gateway;
        using var http = gateway.CreateClient(TimeSpan.FromSeconds(30));
        var sale = await fixture.CreateSaleAsync("gw-restart", Stock, Buckets, perUserLimit: 100);
        var acknowledged = new ConcurrentDictionary<string, string>();
        var statuses = new ConcurrentDictionary<int, int>();
        var errors = new ConcurrentBag<(string RequestId, long At, string Error)>();
        var mismatches = 0;
        var clock = Stopwatch.StartNew();
        long restartFrom = long.MaxValue, restartTo = long.MaxValue;
        using var stop = new CancellationTokenSource();
        var next = -1;

        async Task<int> SendAsync(string user, string requestId)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/sales/{sale.Sku}/purchases")
            {
                Content = new StringContent($$"""{"userId":"{{user}}","quantity":1,"requestId":"{{requestId}}"}""", Encoding.UTF8, "application/json"),
            };
            using var response = await http.SendAsync(request);
            var status = (int)response.StatusCode;
            statuses.AddOrUpdate(status, 1, (_, n) => n + 1);
            if (status is 200 or 201)
            {
                var orderId = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("orderId").GetString()!;
                if (acknowledged.GetOrAdd(requestId, orderId) != orderId)
                {
                    Interlocked.Increment(ref mismatches);
                }
            }

            return status;
        }

        async Task BuyerAsync()
        {
            while (!stop.IsCancellationRequested)
            {
                var j = Interlocked.Increment(ref next);
                var (user, requestId) = ($"g{j % 2000}", $"gr-{j}");
                var backoff = 50;
                while (true)
                {
                    var sentAt = clock.ElapsedMilliseconds;
                    try
                    {
                        await SendAsync(user, requestId);
                        break;
                    }
                    catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                    {
                        // Unknown outcome: replay the same request id, as a client should.
                        errors.Add((requestId, sentAt, ex.GetType().Name));
                        await Task.Delay(backoff);
                        backoff = Math.Min(1000, backoff * 2);
                    }

                    Assert.True(clock.Elapsed < TimeSpan.FromSeconds(120), $"no answer for {requestId} within 120 s");
                }

                await Task.Delay(10);
            }
        }

        var load = Task.WhenAll(Enumerable.Range(0, 16).Select(_ => Task.Run(BuyerAsync)));
        KeyValuePair<string, string>[] beforeRestart;
        try
        {
            await TestDb.WaitUntilAsync(() => Task.FromResult(acknowledged.Count >= 200), TimeSpan.FromSeconds(60));
            beforeRestart = acknowledged.ToArray();

            Interlocked.Exchange(ref restartFrom, clock.ElapsedMilliseconds);
            var port = gateway.Port;
            // A short grace so that some requests are caught in flight, as with an impatient orchestrator.
            await gateway.StopAsync(TimeSpan.FromMilliseconds(100));
            await Task.Delay(500);
            await gateway.StartAsync(port);
            Interlocked.Exchange(ref restartTo, clock.ElapsedMilliseconds);

            var after = acknowledged.Count;
            await TestDb.WaitUntilAsync(() => Task.FromResult(acknowledged.Count >= after + 200), TimeSpan.FromSeconds(60));
        }
        finally
        {
            // Also when a step failed: the buyers must not go on loading the cluster under later tests.
            await stop.CancelAsync();
        }

        await load.WaitAsync(TimeSpan.FromSeconds(150));

        output.WriteLine($"answers {string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{s.Key}={s.Value}"))}; " +
                         $"{errors.Count} transport errors ({string.Join(", ", errors.GroupBy(e => e.Error).Select(g => $"{g.Key}={g.Count()}"))}); " +
                         $"restart window {restartFrom}-{restartTo} ms");
        Assert.All(statuses.Keys, s => Assert.Contains(s, new[] { 200, 201 }));
        Assert.Equal(0, mismatches);
        // Errors only for requests sent before the gateway came back: in flight at the stop, or sent while it was down.
        Assert.All(errors, e => Assert.True(e.At < restartTo, $"{e.RequestId} failed at {e.At} ms, after the restart ended at {restartTo} ms: {e.Error}"));
        // Every failed request was replayed until it had a definite answer.
        Assert.All(errors, e => Assert.True(acknowledged.ContainsKey(e.RequestId), $"{e.RequestId} never got an answer"));

        // Replays after the restart: the original order, answered 200.
        foreach (var (requestId, orderId) in beforeRestart.Concat(errors.Select(e => new KeyValuePair<string, string>(e.RequestId, acknowledged[e.RequestId]))).DistinctBy(p => p.Key))
        {
            var j = long.Parse(requestId["gr-".Length..], System.Globalization.CultureInfo.InvariantCulture);
            Assert.Equal(200, await SendAsync($"g{j % 2000}", requestId));
            Assert.Equal(orderId, acknowledged[requestId]);
        }

        Assert.Equal(0, mismatches);
        Assert.Equal(acknowledged.Values.Distinct().Count(), Stock - (await fixture.RedisStockAsync(sale.Sku, Buckets)).Sum());
        await fixture.AssertNoDriftAsync(sale.Sku);
    }
}
