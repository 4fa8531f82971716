using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansFlashSale.Persistence;
using OrleansFlashSale.Pipeline;
using OrleansFlashSale.Redis;
using OrleansFlashSale.Tests.Messaging;

namespace OrleansFlashSale.Tests;

/// <summary>The silos' expiry sweep over several sales, one of which cannot be swept.</summary>
[Collection(ClusterCollection.Name)]
public sealed class ExpirySweepTests(ClusterFixture fixture)
{
    [Fact]
    public async Task A_sale_whose_sweep_fails_is_logged_and_the_other_sales_are_still_swept()
    {
        // A minute to pay; the clock moves two (the collection's clock only goes forward, see OrderLifecycleTests).
        const int Timeout = 60;
        var broken = new SaleDefinition(ClusterFixture.NewSku("sweep-broken"), 2, 2, 1, null, null, Timeout, 2, SaleModes.Redis);
        var healthy = new SaleDefinition(ClusterFixture.NewSku("sweep-healthy"), 2, 1, 1, null, null, Timeout, 1, SaleModes.Redis);
        foreach (var sale in new[] { broken, healthy })
        {
            Assert.Equal(CreateSaleOutcome.Created, (await fixture.Client.Product(sale.Sku).CreateAsync(sale)).Outcome);
        }

        // The broken sale's order is the older one, so a sweep meets it first.
        var stuck = await BuyPersistedAsync(broken, "stuck");
        var due = await BuyPersistedAsync(healthy, "due");

        // Bucket 1's stock key is lost, then a shrink to 1 bucket stores its plan and fails taking from that bucket.
        // The plan stays pending and every call of the product grain tries it again and throws, the orders grain's
        // routing question on a return included.
        Assert.True(await fixture.Redis.GetDatabase().KeyDeleteAsync(RedisKeys.Stock(broken.Sku, 1)));
        await Assert.ThrowsAnyAsync<Exception>(() => fixture.Client.Product(broken.Sku).RebucketAsync(1));
        await Assert.ThrowsAnyAsync<Exception>(() => fixture.Client.Product(broken.Sku).GetRoutingAsync([]));

        var past = DateTimeOffset.UtcNow.AddSeconds(Timeout + 60);
        fixture.Time.SetUtcNow(past > fixture.Time.GetUtcNow() ? past : fixture.Time.GetUtcNow().AddSeconds(Timeout + 60));

        var silo = fixture.Cluster.Silos[0].ServiceProvider;
        var logs = new LogRecorder();
        using var loggers = new LoggerFactory([logs]);
        var sweep = new OrderExpiryService(silo.GetRequiredService<IGrainFactory>(), silo.GetRequiredService<OrderLifecycleStore>(),
            Options.Create(new OrderExpiryOptions()), loggers.CreateLogger<OrderExpiryService>());
        Assert.Equal(1, await sweep.SweepAsync([broken.Sku, healthy.Sku], CancellationToken.None));

        var orders = fixture.Client.GetGrain<IOrdersGrain>(0);
        Assert.Equal("expired", (await orders.GetAsync(due.OrderId))!.Status);
        Assert.Equal(2, (await fixture.RedisStockAsync(healthy.Sku, 1)).Sum());
        Assert.Equal(2, await TestDb.ScalarAsync("SELECT available_stock FROM inventory WHERE sku = @p", ("@p", healthy.Sku)));
        Assert.Equal("pending_payment", (await orders.GetAsync(stuck.OrderId))!.Status);
        var failed = Assert.Single(logs.Entries, e => e.Event.Id == 5022);
        Assert.Equal(LogLevel.Error, failed.Level);
        Assert.Contains(broken.Sku, failed.Message, StringComparison.Ordinal);
    }

    private async Task<OrderInfo> BuyPersistedAsync(SaleDefinition sale, string user)
    {
        var result = await fixture.BuyAsync(sale, user, "r1");
        Assert.Equal(PurchaseOutcome.Created, result.Outcome);
        var orders = fixture.Client.GetGrain<IOrdersGrain>(0);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while ((await orders.GetAsync(result.Order!.OrderId))?.Status != "pending_payment")
        {
            Assert.True(DateTime.UtcNow < deadline, $"order {result.Order.OrderId} never reached MySQL");
            await Task.Delay(50);
        }

        return result.Order;
    }
}
