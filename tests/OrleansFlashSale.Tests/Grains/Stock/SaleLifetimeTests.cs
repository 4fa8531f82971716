using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using OrleansFlashSale.Redis;
using StackExchange.Redis;

namespace OrleansFlashSale.Tests;

/// <summary>
/// Per-user limits and replay answers hold for a sale's whole life: its end plus the payment timeout, or, for a sale
/// without an end, until an operator closes it. Before, every counter and record expired with the 7-day retention,
/// after which a user could buy up to the limit again and an old request id became a new order.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class SaleLifetimeTests(ClusterFixture fixture)
{
    private static readonly TimeSpan Retention = TimeSpan.FromHours(24 * 7);
    private static readonly TimeSpan PaymentTimeout = TimeSpan.FromSeconds(SaleRules.DefaultPaymentTimeoutSeconds);

    private IDatabase Db => fixture.Redis.GetDatabase();

    [Fact]
    public async Task A_sale_with_an_end_keeps_limits_and_records_until_its_end_plus_the_payment_timeout_on_both_paths()
    {
        var life = TimeSpan.FromDays(30);
        var sale = await fixture.CreateSaleAsync("life", stock: 2, buckets: 2, perUserLimit: 1, quotaShards: 2,
            endsAt: fixture.Time.GetUtcNow() + life);
        var (home, overflow) = (UserOfShard(0, "h"), UserOfShard(0, "o"));

        // The first buyer of shard 0 empties bucket 0 (one unit) in the one-script path; the second is sent on to a
        // sibling through the overflow path (reserve.lua, then a deduction in bucket 1).
        var first = await fixture.BuyAsync(sale, home, "r1");
        var second = await fixture.BuyAsync(sale, overflow, "r1");
        Assert.Equal((PurchaseOutcome.Created, 0), (first.Outcome, first.Order!.Bucket));
        Assert.Equal((PurchaseOutcome.Created, 1), (second.Outcome, second.Order!.Bucket));

        var least = life + PaymentTimeout;
        foreach (var user in new[] { home, overflow })
        {
            Assert.Equal(1, (long)await Db.HashGetAsync(RedisKeys.Units(sale.Sku, 0), user));
            Assert.True(await Db.HashExistsAsync(RedisKeys.Requests(sale.Sku, 0), RedisKeys.RequestField(user, "r1")));
        }

        foreach (var key in new[] { RedisKeys.Units(sale.Sku, 0), RedisKeys.Requests(sale.Sku, 0) })
        {
            var ttl = await Db.KeyTimeToLiveAsync(key);
            Assert.True(ttl > least && ttl <= least + Retention, $"{key}: TTL {ttl}, expected more than {least}");
        }
    }

    [Fact]
    public async Task A_sale_without_an_end_keeps_its_records_until_closed_then_they_expire_and_purchases_are_refused()
    {
        var sale = await fixture.CreateSaleAsync("open", stock: 10, buckets: 2, perUserLimit: 1, quotaShards: 2);
        var buyer = UserOfShard(0, "b");
        Assert.Equal(PurchaseOutcome.Created, (await fixture.BuyAsync(sale, buyer, "r1")).Outcome);
        RedisKey[] records = [RedisKeys.Units(sale.Sku, 0), RedisKeys.Requests(sale.Sku, 0)];
        foreach (var key in records)
        {
            Assert.True(await Db.KeyExistsAsync(key), $"{key} should exist");
            Assert.Null(await Db.KeyTimeToLiveAsync(key));
        }

        var (status, body) = await CloseAsync(sale.Sku);
        Assert.Equal(HttpStatusCode.OK, status);
        var closedAt = body.GetProperty("closedAt").GetDateTimeOffset();
        Assert.Equal(fixture.Time.GetUtcNow(), closedAt);
        Assert.Equal(closedAt, body.GetProperty("sale").GetProperty("endsAt").GetDateTimeOffset());
        Assert.Equal(records.Length, body.GetProperty("recordsExpiring").GetInt64());
        foreach (var key in records)
        {
            var ttl = await Db.KeyTimeToLiveAsync(key);
            Assert.True(ttl > Retention && ttl <= Retention + PaymentTimeout, $"{key}: TTL {ttl}");
        }

        // The stock stays for verify and the order pipeline; nobody buys any more, on either path.
        Assert.Null(await Db.KeyTimeToLiveAsync(RedisKeys.Stock(sale.Sku, 0)));
        Assert.Equal(PurchaseOutcome.Ended, (await fixture.BuyAsync(sale, UserOfShard(0, "late"), "r1")).Outcome);
        Assert.Equal(PurchaseOutcome.Ended, (await fixture.BuyAsync(sale, UserOfShard(1, "late"), "r1")).Outcome);

        // Closing again changes nothing and gives no key a second TTL.
        fixture.Time.Advance(TimeSpan.FromMinutes(1));
        var (again, repeat) = await CloseAsync(sale.Sku);
        Assert.Equal(HttpStatusCode.OK, again);
        Assert.Equal(closedAt, repeat.GetProperty("closedAt").GetDateTimeOffset());
        Assert.Equal(0, repeat.GetProperty("recordsExpiring").GetInt64());

        var (unknown, problem) = await CloseAsync(ClusterFixture.NewSku("none"));
        Assert.Equal((HttpStatusCode.NotFound, "unknown_sale"), (unknown, problem.GetProperty("code").GetString()));
    }

    private async Task<(HttpStatusCode Status, JsonElement Body)> CloseAsync(string sku)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/sales/{sku}/close");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", TestStack.AdminToken);
        using var response = await fixture.Http.SendAsync(request);
        return (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone());
    }

    /// <summary>A fresh user whose quota shard (and home bucket) of a two-shard sale is <paramref name="shard"/>.</summary>
    private static string UserOfShard(int shard, string prefix) =>
        Enumerable.Range(0, 1000).Select(i => $"{prefix}-{Guid.NewGuid():N}").First(u => GrainKeys.QuotaShard(u, 2) == shard);
}
