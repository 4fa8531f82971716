using System.Diagnostics;
using Orleans.Configuration;

namespace OrleansFlashSale.Tests;

/// <summary>Three silos with quick failure detection, so a killed silo is declared dead within seconds.</summary>
public sealed class SiloFailureFixture : ClusterFixture
{
    protected override short Silos => 3;

    protected override void ConfigureSilo(ISiloBuilder silo) =>
        silo.Configure<ClusterMembershipOptions>(o =>
        {
            o.ProbeTimeout = TimeSpan.FromSeconds(1);
            o.NumMissedProbesLimit = 2;
            o.NumVotesForDeathDeclaration = 1;
            o.IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(2);
        });
}

[CollectionDefinition(Name)]
public sealed class SiloFailureCollection : ICollectionFixture<SiloFailureFixture>
{
    public const string Name = "silo-failure";
}

[Collection(SiloFailureCollection.Name)]
public sealed class SiloFailureTests(SiloFailureFixture fixture)
{
    /// <summary>
    /// A silo is killed (no graceful shutdown) while 20,000 purchases run. Buyers whose call failed retry the same
    /// request id, as a real client would, until they get a definite answer.
    /// </summary>
    [Fact]
    public async Task Killing_a_silo_mid_sale_neither_oversells_nor_strands_stock()
    {
        var sale = await fixture.CreateSaleAsync("kill", stock: 1000, buckets: 8, perUserLimit: 2);
        var history = new SaleHistory();
        var answered = 0;
        var retries = 0;
        var requests = Enumerable.Range(0, 20_000).Select(j => (User: $"u{j % 5000}", Request: $"r{j}")).ToArray();
        var killed = new TaskCompletionSource();

        async Task BuyUntilDefiniteAsync((string User, string Request) r)
        {
            var deadline = Stopwatch.StartNew();
            var backoff = TimeSpan.FromMilliseconds(50);
            while (true)
            {
                try
                {
                    var result = await fixture.BuyAsync(sale, r.User, r.Request);
                    if (result.Outcome != PurchaseOutcome.Unavailable)
                    {
                        history.Record(r.User, r.Request, result);
                        break;
                    }
                }
                catch (Exception) when (deadline.Elapsed < TimeSpan.FromSeconds(120))
                {
                    // The call died with the silo: the outcome is unknown, so replay the same request.
                }

                Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(120), $"no definite answer for {r} within 120 s");
                Interlocked.Increment(ref retries);
                // Back off as a polite client does, so retries do not starve the membership probes that must
                // declare the dead silo.
                await Task.Delay(backoff);
                backoff = TimeSpan.FromMilliseconds(Math.Min(2000, backoff.TotalMilliseconds * 2));
            }

            if (Interlocked.Increment(ref answered) == 3000)
            {
                killed.TrySetResult();
            }
        }

        // 512 buyers at a time, each working through its share of the 20,000 requests.
        var next = -1;
        var load = Task.WhenAll(Enumerable.Range(0, 512).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < requests.Length)
            {
                await BuyUntilDefiniteAsync(requests[i]);
            }
        }));
        await killed.Task.WaitAsync(TimeSpan.FromSeconds(60));
        var victim = fixture.Cluster.Silos[^1];
        await fixture.Cluster.KillSiloAsync(victim);
        await load;

        Assert.True(retries > 0, "the kill should have interrupted some purchases");
        Assert.Equal(0, history.ReplayMismatches);
        Assert.Equal(0, history.UsersAbove(2));
        // Every unit Redis deducted belongs to an acknowledged order, and the sale was bought out.
        Assert.Equal(new long[8], await fixture.RedisStockAsync(sale.Sku, 8));
        Assert.Equal(1000, history.AcknowledgedUnits);
        Assert.Equal(1000, history.DistinctOrderIds);
    }

    /// <summary>
    /// Expiry has no owner: every silo sweeps MySQL, so orders expire with their units returned even when a silo
    /// (possibly the one that served them) is gone.
    /// </summary>
    [Fact]
    public async Task Unpaid_orders_expire_and_return_their_units_while_a_silo_is_down()
    {
        const int Timeout = SaleRules.MaxPaymentTimeoutSeconds;
        var sale = new SaleDefinition(ClusterFixture.NewSku("expire-down"), 40, 4, 1, null, null, Timeout, 8, SaleModes.Redis);
        Assert.Equal(CreateSaleOutcome.Created, (await fixture.Client.Product(sale.Sku).CreateAsync(sale)).Outcome);
        var orders = new List<OrderInfo>();
        for (var i = 0; i < 40; i++)
        {
            var result = await fixture.BuyAsync(sale, $"x{i}", "r");
            Assert.Equal(PurchaseOutcome.Created, result.Outcome);
            orders.Add(result.Order!);
        }

        var lifecycle = fixture.Client.GetGrain<IOrdersGrain>(0);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        foreach (var order in orders)
        {
            while ((await lifecycle.GetAsync(order.OrderId))?.Status != OrderLifecycleStatuses.PendingPayment)
            {
                Assert.True(DateTime.UtcNow < deadline, $"order {order.OrderId} never reached MySQL");
                await Task.Delay(50);
            }
        }

        // Take a silo away (the collection's other test may have killed one already; keep at least one).
        var active = fixture.Cluster.GetActiveSilos().ToList();
        if (active.Count > 1)
        {
            await fixture.Cluster.KillSiloAsync(active[^1]);
        }

        var past = DateTimeOffset.UtcNow.AddSeconds(Timeout + 60);
        fixture.Time.SetUtcNow(past > fixture.Time.GetUtcNow() ? past : fixture.Time.GetUtcNow().AddSeconds(Timeout + 60));
        deadline = DateTime.UtcNow.AddSeconds(120);
        while (true)
        {
            try
            {
                await lifecycle.ExpireDueAsync(sale.Sku, 500);
                var statuses = await Task.WhenAll(orders.Select(o => lifecycle.GetAsync(o.OrderId)));
                if (statuses.All(o => o?.Status == OrderLifecycleStatuses.Expired))
                {
                    break;
                }
            }
            catch (Exception) when (DateTime.UtcNow < deadline)
            {
                // A call that met the dead silo before membership declared it: the sweep is retried, as the
                // service would on its next tick.
            }

            Assert.True(DateTime.UtcNow < deadline, "not every unpaid order expired");
            await Task.Delay(200);
        }

        // Units are back in Redis (every bucket) once the returns have gone through.
        deadline = DateTime.UtcNow.AddSeconds(60);
        while ((await fixture.RedisStockAsync(sale.Sku, 4)).Sum() != 40)
        {
            Assert.True(DateTime.UtcNow < deadline, "returned units did not all reach Redis");
            try
            {
                await lifecycle.ExpireDueAsync(sale.Sku, 500);
            }
            catch (Exception) when (DateTime.UtcNow < deadline)
            {
                // As above.
            }

            await Task.Delay(200);
        }

        Assert.Equal(40, (await fixture.RedisStockAsync(sale.Sku, 4)).Sum());
    }
}
