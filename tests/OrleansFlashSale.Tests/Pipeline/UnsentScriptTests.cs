using Microsoft.Extensions.DependencyInjection;
using OrleansFlashSale.Messaging;

namespace OrleansFlashSale.Tests;

/// <summary>
/// A bucket script that certainly did not run (the Redis client failed it before sending, as it does for every command
/// while Redis is down) took nothing, so it does not make its transaction unknown: the bucket still commits what the
/// transaction's other batches deducted, at once, and no transaction of the sale waits for the check-back.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class UnsentScriptTests(ClusterFixture fixture)
{
    [Fact]
    public async Task A_script_failed_before_sending_leaves_nothing_to_the_check_back()
    {
        var sale = await fixture.CreateSaleAsync("unsent", stock: 10, buckets: 1, perUserLimit: 5);
        var faults = fixture.Cluster.Silos.Select(s => s.ServiceProvider.GetRequiredService<PipelineFaults>()).ToArray();
        var first = await fixture.BuyAsync(sale, "u-first", "r1");
        Assert.Equal(PurchaseOutcome.Created, first.Outcome);

        PurchaseResult failed;
        try
        {
            foreach (var f in faults)
            {
                f.FailNextScriptsUnsent(1);
            }

            failed = await fixture.BuyAsync(sale, "u-second", "r1");
        }
        finally
        {
            foreach (var f in faults)
            {
                f.FailNextScriptsUnsent(0);
            }
        }

        Assert.Equal(PurchaseOutcome.Unavailable, failed.Outcome);
        // The buyer retries with the same request id: the failed script took nothing, so this deducts.
        var retried = await fixture.BuyAsync(sale, "u-second", "r1");
        Assert.Equal(PurchaseOutcome.Created, retried.Outcome);

        await TestDb.WaitUntilAsync(async () => (await TestDb.OrdersAsync(sale.Sku)).Count == 2, TimeSpan.FromSeconds(20));
        Assert.Equal(new[] { first.Order!.OrderId, retried.Order!.OrderId }.Order(), (await TestDb.OrdersAsync(sale.Sku)).Keys.Order());

        // Every half message resolved; had any transaction of the sale been left to the check-back, its fence would
        // now be closed ('F') or rolled back ('X'). The scripts' own mark is 'C'.
        var nats = fixture.Cluster.Silos[0].ServiceProvider.GetRequiredService<JetStreamConnection>();
        await TestDb.WaitUntilAsync(async () => (await nats.JetStream.GetStreamAsync(nats.Topology.HalfStream)).Info.State.Messages == 0,
            TimeSpan.FromSeconds(20));
        var fences = await fixture.FenceStatesAsync(sale.Sku, buckets: 1);
        Assert.NotEmpty(fences);
        Assert.All(fences, f => Assert.Equal("C", f));
        await fixture.AssertNoDriftAsync(sale.Sku);
    }
}
