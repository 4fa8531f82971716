namespace OrleansFlashSale.Tests;

/// <summary>The grain call that carries several purchases from a quota shard to a bucket.</summary>
[Collection(ClusterCollection.Name)]
public sealed class BatchedPurchaseTests(ClusterFixture fixture)
{
    [Fact]
    public async Task A_bucket_answers_a_batched_call_in_order_and_deducts_each_order_at_most_once()
    {
        var sale = await fixture.CreateSaleAsync("deduct-many", stock: 4, buckets: 1, perUserLimit: 3);
        var ids = Enumerable.Range(0, 4).Select(_ => Guid.NewGuid().ToString("N")).ToArray();
        DeductRequest Order(int i, int quantity) => new(ids[i], $"u{i}", $"r{i}", quantity);

        var results = await fixture.Client.Bucket(sale.Sku, 0).DeductManyAsync(
        [
            Order(0, 1),
            Order(1, 1),
            Order(0, 1), // the same order again in the same call
            Order(2, 3), // two units left: refused whole
            Order(3, 1),
        ]);

        Assert.Equal(
            [DeductOutcome.Deducted, DeductOutcome.Deducted, DeductOutcome.AlreadyDeducted, DeductOutcome.Insufficient, DeductOutcome.Deducted],
            results.Select(r => r.Outcome).ToArray());
        Assert.Equal(new long[] { 1 }, await fixture.RedisStockAsync(sale.Sku, 1));
        Assert.True(await fixture.Client.Bucket(sale.Sku, 0).HasOrderAsync(ids[3]));
        Assert.False(await fixture.Client.Bucket(sale.Sku, 0).HasOrderAsync(ids[2]));

        // Sent again (a retried call) while the bucket still has a unit, nothing is deducted twice.
        var again = await fixture.Client.Bucket(sale.Sku, 0).DeductManyAsync([Order(0, 1), Order(1, 1), Order(3, 1)]);
        Assert.All(again, r => Assert.Equal(DeductOutcome.AlreadyDeducted, r.Outcome));
        Assert.Equal(new long[] { 1 }, await fixture.RedisStockAsync(sale.Sku, 1));
    }

    [Fact]
    public async Task Purchases_of_one_shard_sent_together_each_get_their_own_answer()
    {
        // One quota shard and one bucket: every concurrent purchase goes through the same batched calls.
        var sale = await fixture.CreateSaleAsync("one-shard", stock: 300, buckets: 1, perUserLimit: 1, quotaShards: 1);
        var history = new SaleHistory();
        await Task.WhenAll(Enumerable.Range(0, 500).Select(async i =>
            history.Record($"u{i % 400}", $"r{i % 400}", await fixture.BuyAsync(sale, $"u{i % 400}", $"r{i % 400}"))));

        Assert.Equal(0, history.Count(PurchaseOutcome.Unavailable));
        Assert.Equal(300, history.AcknowledgedUnits);
        Assert.Equal(300, history.DistinctOrderIds);
        Assert.Equal(0, history.UsersAbove(1));
        Assert.Equal(0, history.ReplayMismatches);
        Assert.Equal(new long[1], await fixture.RedisStockAsync(sale.Sku, 1));
    }

    [Fact]
    public async Task Initialising_a_bucket_again_never_restocks_what_was_sold()
    {
        // As when a sale is created again after its definition failed to store: the buckets are initialised twice.
        var sale = await fixture.CreateSaleAsync("init-twice", stock: 10, buckets: 1, perUserLimit: 5, quotaShards: 1);
        Assert.Equal(PurchaseOutcome.Created, (await fixture.BuyAsync(sale, "u1", "r1", quantity: 3)).Outcome);
        Assert.Equal(new long[] { 7 }, await fixture.RedisStockAsync(sale.Sku, 1));

        await fixture.Client.Bucket(sale.Sku, 0).InitializeAsync(10);

        Assert.Equal(new long[] { 7 }, await fixture.RedisStockAsync(sale.Sku, 1));
        Assert.Equal(7, await fixture.Client.Bucket(sale.Sku, 0).GetRemainingAsync(refresh: false));
    }
}
