using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using OrleansFlashSale.Client.Api;

namespace OrleansFlashSale.Tests;

/// <summary>
/// The gateway's sold-out cache on the real cluster: new buyers of a sold-out sale are refused from memory, users
/// holding units are still forwarded (so replays get their orders), and the memory expires and is forgotten on a success.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class SoldOutCacheTests(ClusterFixture fixture)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private SoldOutCache NewCache(TimeProvider time) =>
        new(fixture.Client, Options.Create(new GatewayOptions { SoldOutCacheMs = 1000 }),
            new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>(),
            NullLogger<SoldOutCache>.Instance, time);

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var until = DateTime.UtcNow + Deadline;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < until, what);
            await Task.Delay(20);
        }
    }

    private async Task<(HttpStatusCode Status, JsonElement Body)> PostPurchaseAsync(string sku, string user, string request)
    {
        var response = await fixture.Http.PostAsJsonAsync($"/api/sales/{sku}/purchases", new { userId = user, quantity = 1, requestId = request });
        if (response.StatusCode is not (HttpStatusCode.OK or HttpStatusCode.Created))
        {
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        }

        return (response.StatusCode, await response.Content.ReadFromJsonAsync<JsonElement>());
    }

    [Fact]
    public async Task The_cache_refuses_only_users_without_units_and_expires_or_is_forgotten()
    {
        var sale = await fixture.CreateSaleAsync("soc-unit", stock: 2, buckets: 1, perUserLimit: 1);
        Assert.Equal(PurchaseOutcome.Created, (await fixture.BuyAsync(sale, "a", "ra")).Outcome);
        Assert.Equal(PurchaseOutcome.Created, (await fixture.BuyAsync(sale, "b", "rb")).Outcome);
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var cache = NewCache(time);
        Assert.False(cache.CanAnswerSoldOut(sale, "c"));

        // A quantity above one being refused says nothing about single units: not learned.
        var two = new PurchaseRequest(sale.Sku, "c", "rc2", 2);
        cache.Observe(sale, two, PurchaseResult.Rejected(PurchaseOutcome.SoldOut));
        var one = new PurchaseRequest(sale.Sku, "c", "rc", 1);
        var refused = await fixture.BuyAsync(sale, "c", "rc");
        Assert.Equal(PurchaseOutcome.SoldOut, refused.Outcome);
        cache.Observe(sale, one, refused);
        await WaitUntilAsync(() => cache.CanAnswerSoldOut(sale, "d"), "the cache never started answering for a new user");

        // The two buyers (both bought through the cluster client, not through this cache) are forwarded.
        Assert.False(cache.CanAnswerSoldOut(sale, "a"));
        Assert.False(cache.CanAnswerSoldOut(sale, "b"));

        // One period later the cache no longer answers until the cluster says sold out again.
        time.Advance(TimeSpan.FromMilliseconds(1001));
        Assert.False(cache.CanAnswerSoldOut(sale, "d"));
        cache.Observe(sale, one, refused);
        await WaitUntilAsync(() => cache.CanAnswerSoldOut(sale, "d"), "the cache did not learn the sold-out state again");

        // A user this cache saw replaying is forwarded from then on; a success anywhere through it forgets the sale.
        cache.Observe(sale, new PurchaseRequest(sale.Sku, "e", "re", 1), new PurchaseResult(PurchaseOutcome.Replayed, null, null));
        Assert.False(cache.CanAnswerSoldOut(sale, "e"));
        cache.Observe(sale, new PurchaseRequest(sale.Sku, "f", "rf", 1), new PurchaseResult(PurchaseOutcome.Created, null, null));
        Assert.False(cache.CanAnswerSoldOut(sale, "d"));
    }

    [Fact]
    public async Task Replays_get_their_orders_while_the_gateway_answers_sold_out_from_memory()
    {
        var sale = await fixture.CreateSaleAsync("soc-http", stock: 2, buckets: 1, perUserLimit: 1);
        // One buyer through the cluster client (as through another gateway), one through this gateway.
        var viaCluster = await fixture.BuyAsync(sale, "a", "ra");
        Assert.Equal(PurchaseOutcome.Created, viaCluster.Outcome);
        var (createdStatus, created) = await PostPurchaseAsync(sale.Sku, "b", "rb");
        Assert.Equal(HttpStatusCode.Created, createdStatus);

        var (fromGrainStatus, fromGrain) = await PostPurchaseAsync(sale.Sku, "c", "rc");
        Assert.Equal(HttpStatusCode.Conflict, fromGrainStatus);
        var cache = fixture.GatewayServices.GetRequiredService<SoldOutCache>();
        var until = DateTime.UtcNow + Deadline;
        var attempt = 0;
        while (true)
        {
            // The cache lives one second: the replays below count only if it was answering around them.
            await WaitUntilAsync(() => cache.CanAnswerSoldOut(sale, "probe"), "the gateway never cached the sold-out state");
            var (replayA, orderA) = await PostPurchaseAsync(sale.Sku, "a", "ra");
            var (replayB, orderB) = await PostPurchaseAsync(sale.Sku, "b", "rb");
            var (newStatus, newBody) = await PostPurchaseAsync(sale.Sku, $"d{attempt}", $"rd{attempt}");
            Assert.Equal(HttpStatusCode.OK, replayA);
            Assert.Equal(viaCluster.Order!.OrderId, orderA.GetProperty("orderId").GetString());
            Assert.Equal(HttpStatusCode.OK, replayB);
            Assert.Equal(created.GetProperty("orderId").GetString(), orderB.GetProperty("orderId").GetString());
            // The cached refusal is the grain's refusal (only the per-request trace id differs).
            Assert.Equal(fromGrainStatus, newStatus);
            foreach (var member in new[] { "type", "title", "status", "code" })
            {
                Assert.Equal(fromGrain.GetProperty(member).ToString(), newBody.GetProperty(member).ToString());
            }

            Assert.Equal(fromGrain.TryGetProperty("detail", out var d1), newBody.TryGetProperty("detail", out var d2));
            Assert.Equal(d1.ToString(), d2.ToString());
            if (cache.CanAnswerSoldOut(sale, "probe"))
            {
                break;
            }

            Assert.True(DateTime.UtcNow < until, "the cache expired around every attempt");
            attempt++;
            // Expired: the next refusal from the grain fills it again.
            await PostPurchaseAsync(sale.Sku, "c", "rc");
        }

        Assert.Equal("sold_out", fromGrain.GetProperty("code").GetString());
        var status = await fixture.Client.Product(sale.Sku).GetStatusAsync(refresh: true);
        Assert.Equal(2, status!.Sold);
    }
}
