using OrleansFlashSale.Grains;
using OrleansFlashSale.Redis;

namespace OrleansFlashSale.Tests;

[Collection(ClusterCollection.Name)]
public sealed class PurchaseTests(ClusterFixture fixture)
{
    [Fact]
    public async Task Twenty_thousand_concurrent_purchases_with_replays_sell_exactly_the_stock()
    {
        var sale = await fixture.CreateSaleAsync("buyout", stock: 1000, buckets: 8, perUserLimit: 2);
        var history = new SaleHistory();
        var requests = Enumerable.Range(0, 20_000).Select(j =>
        {
            var user = $"u{j % 5000}";
            // Every seventh request past the first round repeats the request id its user sent one round earlier.
            var request = j >= 5000 && j % 7 == 0 ? $"r{j - 5000}" : $"r{j}";
            return (user, request);
        }).ToArray();

        await Task.WhenAll(requests.Select(async r => history.Record(r.user, r.request, await fixture.BuyAsync(sale, r.user, r.request))));

        Assert.Equal(0, history.Count(PurchaseOutcome.Unavailable));
        Assert.Equal(1000, history.AcknowledgedUnits);
        Assert.Equal(1000, history.DistinctOrderIds);
        Assert.Equal(0, history.UsersAbove(2));
        Assert.Equal(0, history.ReplayMismatches);
        Assert.True(history.Count(PurchaseOutcome.Replayed) > 0, "the run should have replayed some requests");
        Assert.Equal(new long[8], await fixture.RedisStockAsync(sale.Sku, 8));

        // Replays after the sale is over still get their original order.
        foreach (var order in history.Orders.Take(50))
        {
            var replay = await fixture.BuyAsync(sale, order.UserId, order.RequestId);
            Assert.Equal(PurchaseOutcome.Replayed, replay.Outcome);
            Assert.Equal(order.OrderId, replay.Order!.OrderId);
        }

        var status = await fixture.Client.Product(sale.Sku).GetStatusAsync(refresh: true);
        Assert.Equal(1000, status!.Sold);
        Assert.Equal(SaleStates.SoldOut, status.State);
    }

    [Fact]
    public async Task Once_sold_out_rejections_of_new_buyers_do_not_reach_Redis()
    {
        var sale = await fixture.CreateSaleAsync("cached-soldout", stock: 3, buckets: 2, perUserLimit: 1);
        var winners = new List<OrderInfo>();
        for (var i = 0; i < 4; i++)
        {
            var result = await fixture.BuyAsync(sale, $"early{i}", "r");
            if (result.Order is { } order)
            {
                winners.Add(order);
            }
        }

        Assert.Equal(3, winners.Count);
        var server = fixture.Redis.GetServers().Single();
        async Task<long> ScriptCallsAsync()
        {
            var stats = await server.InfoAsync("commandstats");
            return stats.SelectMany(g => g).Where(kv => kv.Key is "cmdstat_evalsha" or "cmdstat_eval")
                .Sum(kv => long.Parse(kv.Value.Split(',')[0].Split('=')[1], System.Globalization.CultureInfo.InvariantCulture));
        }

        var before = await ScriptCallsAsync();
        for (var i = 0; i < 200; i++)
        {
            Assert.Equal(PurchaseOutcome.SoldOut, (await fixture.BuyAsync(sale, $"late{i}", "r")).Outcome);
        }

        // 200 rejections one after another: without the cache each would be a script call. A few calls may come
        // from elsewhere (membership writes its heartbeat with scripts too).
        var calls = await ScriptCallsAsync() - before;
        Assert.True(calls < 20, $"{calls} script calls for 200 sold-out rejections");

        // Buyers still get their original order back.
        foreach (var order in winners)
        {
            var replay = await fixture.BuyAsync(sale, order.UserId, order.RequestId);
            Assert.Equal(PurchaseOutcome.Replayed, replay.Outcome);
            Assert.Equal(order.OrderId, replay.Order!.OrderId);
        }
    }

    [Fact]
    public async Task Purchases_overflow_to_siblings_until_the_last_unit_in_any_bucket_is_sold()
    {
        // 37 units over 16 buckets (fragments of 3 and 2), and every buyer prefers the same bucket.
        var sale = await fixture.CreateSaleAsync("tail", stock: 37, buckets: 16, perUserLimit: 1);
        var users = Enumerable.Range(0, 100_000).Select(i => $"t{i}")
            .Where(u => StableHash.Bucket(u, 16) == 5).Take(200).ToArray();
        var history = new SaleHistory();
        await Task.WhenAll(users.Select(async u => history.Record(u, "r", await fixture.BuyAsync(sale, u, "r"))));

        Assert.Equal(37, history.AcknowledgedUnits);
        Assert.Equal(163, history.Count(PurchaseOutcome.SoldOut));
        Assert.Equal(new long[16], await fixture.RedisStockAsync(sale.Sku, 16));
    }

    [Fact]
    public async Task Every_quota_key_a_purchase_writes_expires_after_the_sale_ends_plus_the_record_lifetime()
    {
        var sale = await fixture.CreateSaleAsync("ttl", stock: 10, buckets: 2, perUserLimit: 2, endsAt: fixture.Time.GetUtcNow().AddDays(1));
        var first = await fixture.BuyAsync(sale, "ttl-user", "r1");
        var second = await fixture.BuyAsync(sale, "ttl-user", "r2");
        Assert.Equal(PurchaseOutcome.Created, first.Outcome);
        Assert.Equal(PurchaseOutcome.Created, second.Outcome);

        // The shard's counters and request records (two hashes, holding the user's counter and both records): neither
        // may expire before the sale's end plus its payment timeout, outlive the retention after that, or be left
        // without a TTL (set once per batch).
        var shard = GrainKeys.QuotaShard("ttl-user", sale.QuotaShards);
        var db = fixture.Redis.GetDatabase();
        var least = TimeSpan.FromDays(1) + TimeSpan.FromSeconds(sale.PaymentTimeoutSeconds);
        var lifetime = least + new DeductionOptions().RecordTtl;
        foreach (var key in new[]
        {
            RedisKeys.Units(sale.Sku, shard),
            RedisKeys.Requests(sale.Sku, shard),
        })
        {
            var ttl = await db.KeyTimeToLiveAsync(key);
            Assert.True(ttl is { } t && t > least && t <= lifetime, $"{key}: TTL {ttl?.ToString() ?? "none"}");
        }

        Assert.Equal(2, (long)await db.HashGetAsync(RedisKeys.Units(sale.Sku, shard), "ttl-user"));
        Assert.True(await db.HashExistsAsync(RedisKeys.Requests(sale.Sku, shard), RedisKeys.RequestField("ttl-user", "r1")));
        Assert.True(await db.HashExistsAsync(RedisKeys.Requests(sale.Sku, shard), RedisKeys.RequestField("ttl-user", "r2")));
    }

    [Fact]
    public async Task The_per_user_limit_holds_across_buckets()
    {
        // One unit per bucket: the buyer's home bucket serves one purchase (the one-script path), and the other two
        // must come from two sibling buckets through the overflow path, which counts against the same limit.
        var sale = await fixture.CreateSaleAsync("limit", stock: 8, buckets: 8, perUserLimit: 3, quotaShards: 8);
        var results = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => fixture.BuyAsync(sale, "greedy", $"r{i}")));

        Assert.Equal(3, results.Count(r => r.Outcome == PurchaseOutcome.Created));
        Assert.Equal(37, results.Count(r => r.Outcome == PurchaseOutcome.LimitExceeded));
        var buckets = results.Where(r => r.Order is not null).Select(r => r.Order!.Bucket).ToArray();
        Assert.Equal(3, buckets.Distinct().Count());
        Assert.Contains(GrainKeys.QuotaShard("greedy", sale.QuotaShards), buckets);
        var shard = GrainKeys.QuotaShard("greedy", sale.QuotaShards);
        Assert.Equal(3, await fixture.Client.Quota(sale.Sku, shard).GetUserUnitsAsync("greedy"));
        Assert.Equal(5, (await fixture.RedisStockAsync(sale.Sku, 8)).Sum());
    }

    [Fact]
    public async Task A_multi_unit_purchase_is_all_or_nothing_and_counts_against_the_limit()
    {
        var sale = await fixture.CreateSaleAsync("multi", stock: 5, buckets: 1, perUserLimit: 4);
        var first = await fixture.BuyAsync(sale, "a", "r1", quantity: 4);
        Assert.Equal(PurchaseOutcome.Created, first.Outcome);
        Assert.Equal(4, first.Order!.Quantity);

        var tooMany = await fixture.BuyAsync(sale, "b", "r1", quantity: 2);
        Assert.Equal(PurchaseOutcome.SoldOut, tooMany.Outcome);
        Assert.Equal(1, (await fixture.RedisStockAsync(sale.Sku, 1)).Sum());

        // The refused purchase gave its reserved units back: b can still buy the last one.
        Assert.Equal(PurchaseOutcome.Created, (await fixture.BuyAsync(sale, "b", "r2")).Outcome);
        Assert.Equal(PurchaseOutcome.LimitExceeded, (await fixture.BuyAsync(sale, "a", "r2")).Outcome);
    }

    [Fact]
    public async Task Sales_refuse_purchases_before_they_start_and_after_they_end()
    {
        var now = fixture.Time.GetUtcNow();
        var sale = await fixture.CreateSaleAsync("window", stock: 10, buckets: 2, perUserLimit: 1,
            startsAt: now.AddHours(1), endsAt: now.AddHours(2));

        Assert.Equal(PurchaseOutcome.NotStarted, (await fixture.BuyAsync(sale, "u", "r1")).Outcome);
        fixture.Time.Advance(TimeSpan.FromMinutes(61));
        Assert.Equal(PurchaseOutcome.Created, (await fixture.BuyAsync(sale, "u", "r2")).Outcome);
        fixture.Time.Advance(TimeSpan.FromMinutes(60));
        Assert.Equal(PurchaseOutcome.Ended, (await fixture.BuyAsync(sale, "v", "r3")).Outcome);
        Assert.Equal(9, (await fixture.RedisStockAsync(sale.Sku, 2)).Sum());
    }

    [Fact]
    public async Task Unknown_sales_are_reported_as_such()
    {
        var sku = ClusterFixture.NewSku("nosale");
        var result = await fixture.Client.Quota(sku, 0).PurchaseAsync(new PurchaseRequest(sku, "u", "r", 1));
        Assert.Equal(PurchaseOutcome.UnknownSale, result.Outcome);
        Assert.Null(await fixture.Client.Product(sku).GetStatusAsync(refresh: false));
    }

    [Fact]
    public async Task Rebucketing_8_to_3_to_16_under_load_conserves_every_unit()
    {
        const long Stock = 6000;
        var sale = await fixture.CreateSaleAsync("rebucket", stock: Stock, buckets: 8, perUserLimit: 1_000_000);
        var product = fixture.Client.Product(sale.Sku);
        var history = new SaleHistory();
        var next = 0;

        async Task LoadAsync(CancellationToken stop)
        {
            var workers = Enumerable.Range(0, 32).Select(async w =>
            {
                while (!stop.IsCancellationRequested)
                {
                    var i = Interlocked.Increment(ref next);
                    var user = $"w{i % 500}";
                    history.Record(user, $"r{i}", await fixture.BuyAsync(sale, user, $"r{i}"));
                }
            });
            await Task.WhenAll(workers);
        }

        async Task AssertConservedAsync(int buckets)
        {
            var status = await product.GetStatusAsync(refresh: true);
            var redis = await fixture.RedisStockAsync(sale.Sku, 16);
            Assert.Equal(buckets, status!.Buckets.Count);
            Assert.Equal(Stock, history.AcknowledgedUnits + redis.Sum());
            Assert.Equal(Stock, status.Sold + status.Remaining);
            Assert.Equal(history.AcknowledgedUnits, status.Sold);
            Assert.All(redis.Skip(buckets), r => Assert.Equal(0, r));
        }

        foreach (var buckets in new[] { 3, 16 })
        {
            using var stop = new CancellationTokenSource();
            var load = LoadAsync(stop.Token);
            try
            {
                await WaitUntilAsync(() => history.AcknowledgedUnits > (buckets == 3 ? 500 : 2500));
                var result = await product.RebucketAsync(buckets);
                Assert.Equal(RebucketOutcome.Done, result.Outcome);
                await WaitUntilAsync(() => history.AcknowledgedUnits > (buckets == 3 ? 1500 : 3500));
            }
            finally
            {
                // Also when an assertion failed: the buyers must not go on loading the cluster under later tests.
                await stop.CancelAsync();
            }

            await load;
            await AssertConservedAsync(buckets);
        }

        // Units moved into the new buckets are all sellable: buy the rest out.
        using (var stop = new CancellationTokenSource())
        {
            var load = LoadAsync(stop.Token);
            try
            {
                await WaitUntilAsync(() => history.Count(PurchaseOutcome.SoldOut) > 100, () => string.Join(", ", history.Outcomes.Select(o => $"{o.Key}={o.Value}")) + $" acknowledged={history.AcknowledgedUnits}");
            }
            finally
            {
                await stop.CancelAsync();
            }

            await load;
        }

        Assert.Equal(0, history.Count(PurchaseOutcome.Unavailable));
        Assert.Equal(Stock, history.AcknowledgedUnits);
        await AssertConservedAsync(16);
    }

    private static async Task WaitUntilAsync(Func<bool> condition, Func<string>? describe = null)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached within 60 s " + describe?.Invoke());
            await Task.Delay(10);
        }
    }
}
