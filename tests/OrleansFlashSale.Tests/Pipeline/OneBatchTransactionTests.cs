using Microsoft.Extensions.DependencyInjection;

namespace OrleansFlashSale.Tests;

/// <summary>
/// A silo with <c>FlashSale:Deduction:TransactionEpochMilliseconds</c> = 0, as a rolling upgrade from a version
/// without transaction epochs is rolled out: each transaction is one batch, and its half message lists its orders.
/// </summary>
public sealed class OneBatchTransactionsFixture : ClusterFixture
{
    protected override short Silos => 1;

    protected override void ConfigureSettings(IDictionary<string, string?> settings) =>
        settings["FlashSale:Deduction:TransactionEpochMilliseconds"] = "0";
}

[CollectionDefinition(Name)]
public sealed class OneBatchTransactionsCollection : ICollectionFixture<OneBatchTransactionsFixture>
{
    public const string Name = "one-batch-transactions";
}

[Collection(OneBatchTransactionsCollection.Name)]
public sealed class OneBatchTransactionTests(OneBatchTransactionsFixture fixture)
{
    /// <summary>
    /// Every commit event dropped, so the check-back alone brings the orders to MySQL. It answers these half messages
    /// from the orders they list (fence.lua, which leaves a committed fence at 'C'), as an older silo would, not from
    /// the log by transaction id (seal.lua, which closes a fence to 'F').
    /// </summary>
    [Fact]
    public async Task One_batch_half_messages_are_answered_from_the_orders_they_list_and_every_order_reaches_MySQL()
    {
        var sale = await fixture.CreateSaleAsync("one-batch", stock: 120, buckets: 2, perUserLimit: 2);
        var faults = fixture.Cluster.Silos[0].ServiceProvider.GetRequiredService<PipelineFaults>();
        faults.DropNextCommitEvents(int.MaxValue);
        SaleHistory history;
        try
        {
            history = await fixture.BuyOutAsync(sale, users: 80, requests: 200);
        }
        finally
        {
            faults.DropNextCommitEvents(0);
        }

        Assert.Equal(120, history.AcknowledgedUnits);
        await TestDb.WaitUntilAsync(async () => (await TestDb.OrdersAsync(sale.Sku)).Count == history.DistinctOrderIds, TimeSpan.FromSeconds(30));
        Assert.Equal(history.Orders.Select(o => o.OrderId).Order(), (await TestDb.OrdersAsync(sale.Sku)).Keys.Order());

        var fences = await fixture.FenceStatesAsync(sale.Sku, buckets: 2);
        Assert.NotEmpty(fences);
        Assert.All(fences, f => Assert.Equal("C", f));
        await fixture.AssertNoDriftAsync(sale.Sku);
    }
}
