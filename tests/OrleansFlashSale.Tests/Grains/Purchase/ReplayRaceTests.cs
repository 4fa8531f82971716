using OrleansFlashSale.Redis;
using StackExchange.Redis;

namespace OrleansFlashSale.Tests;

/// <summary>
/// A replay must not race its own first attempt: the first attempt reserved the user's units under an order id, and
/// its deduction is still on its way to a bucket (the quota grain's bucket call timed out, or its silo died) when the
/// buyer retries with the same request id.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ReplayRaceTests(ClusterFixture fixture)
{
    private readonly RedisScripts _scripts = new();

    /// <summary>What the first attempt left: the reservation of one unit under <paramref name="orderId"/>.</summary>
    private async Task ReserveAsync(SaleDefinition sale, int shard, string user, string request, string orderId)
    {
        var answer = (RedisResult[])(await RedisScripts.EvaluateAsync(fixture.Redis.GetDatabase(), _scripts.Reserve,
            [RedisKeys.Units(sale.Sku, shard), RedisKeys.Requests(sale.Sku, shard)],
            [sale.PerUserLimit, 3600, "0", 1, orderId, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), user, request]))!;
        Assert.Equal(1, (long)answer[0]);
    }

    [Fact]
    public async Task A_deduction_that_lands_after_the_replay_took_over_is_refused_so_one_order_takes_one_unit()
    {
        var sale = await fixture.CreateSaleAsync("replay-race", stock: 10, buckets: 2, perUserLimit: 1, quotaShards: 2);
        const string user = "racer", request = "r1";
        var shard = GrainKeys.QuotaShard(user, sale.QuotaShards);
        var first = Guid.NewGuid().ToString("N");
        await ReserveAsync(sale, shard, user, request, first);

        // The buyer retries while the first attempt's deduction is still held somewhere on its way.
        var replay = await fixture.Client.Quota(sale.Sku, shard).PurchaseAsync(new PurchaseRequest(sale.Sku, user, request, 1));
        Assert.Equal(PurchaseOutcome.Created, replay.Outcome);
        Assert.NotEqual(first, replay.Order!.OrderId);

        // Now the held deduction arrives, at either bucket: neither may take a unit for it.
        foreach (var bucket in new[] { 0, 1 })
        {
            var late = await fixture.Client.Bucket(sale.Sku, bucket).DeductManyAsync([new DeductRequest(first, user, request, 1)]);
            Assert.Equal(DeductOutcome.Voided, Assert.Single(late).Outcome);
        }

        Assert.Equal(9, (await fixture.RedisStockAsync(sale.Sku, 2)).Sum());
        Assert.Equal(1, (long)await fixture.Redis.GetDatabase().HashGetAsync(RedisKeys.Units(sale.Sku, shard), user));

        // And the buyer's next retry gets the same order again.
        var again = await fixture.Client.Quota(sale.Sku, shard).PurchaseAsync(new PurchaseRequest(sale.Sku, user, request, 1));
        Assert.Equal(PurchaseOutcome.Replayed, again.Outcome);
        Assert.Equal(replay.Order.OrderId, again.Order!.OrderId);
    }

    [Fact]
    public async Task A_deduction_that_landed_before_the_replay_is_found_and_answered()
    {
        var sale = await fixture.CreateSaleAsync("replay-landed", stock: 10, buckets: 2, perUserLimit: 1, quotaShards: 2);
        const string user = "lander", request = "r1";
        var shard = GrainKeys.QuotaShard(user, sale.QuotaShards);
        var first = Guid.NewGuid().ToString("N");
        await ReserveAsync(sale, shard, user, request, first);
        var landed = await fixture.Client.Bucket(sale.Sku, 1 - shard).DeductManyAsync([new DeductRequest(first, user, request, 1)]);
        Assert.Equal(DeductOutcome.Deducted, Assert.Single(landed).Outcome);

        var replay = await fixture.Client.Quota(sale.Sku, shard).PurchaseAsync(new PurchaseRequest(sale.Sku, user, request, 1));
        Assert.Equal(PurchaseOutcome.Replayed, replay.Outcome);
        Assert.Equal(first, replay.Order!.OrderId);
        Assert.Equal(1 - shard, replay.Order.Bucket);
        Assert.Equal(9, (await fixture.RedisStockAsync(sale.Sku, 2)).Sum());
    }

    [Fact]
    public async Task Void_answers_for_good_whichever_comes_first()
    {
        var sku = ClusterFixture.NewSku("lua-void");
        var db = fixture.Redis.GetDatabase();
        await db.StringSetAsync(RedisKeys.Stock(sku, 0), 5);
        async Task<string> DeductAsync(string order, string tx) => ((RedisResult[])(await RedisScripts.EvaluateAsync(db, _scripts.Deduct,
            [RedisKeys.Stock(sku, 0), RedisKeys.Log(sku, 0), RedisKeys.Fence(sku, 0, tx), RedisKeys.OrderMarker(sku, 0, order)],
            [0, 3600, tx, order, "u", "r-" + order, 1]))!)[1].ToString();
        async Task<long> VoidAsync(string order) =>
            (long)await RedisScripts.EvaluateAsync(db, _scripts.Void, [RedisKeys.OrderMarker(sku, 0, order)], [3600]);

        Assert.Equal(0, await VoidAsync("late"));
        Assert.Equal("3", await DeductAsync("late", Guid.NewGuid().ToString("N")));
        Assert.Equal(0, await VoidAsync("late"));

        Assert.Matches(@"^\d+-\d+$", await DeductAsync("early", Guid.NewGuid().ToString("N")));
        Assert.Equal(1, await VoidAsync("early"));
        Assert.Equal(4, (long)await db.StringGetAsync(RedisKeys.Stock(sku, 0)));
    }
}
