using System.Diagnostics;
using MySqlConnector;
using Xunit.Abstractions;

namespace OrleansFlashSale.Tests;

/// <summary>
/// Its own cluster, so that stopping Redis, MariaDB or NATS under it never disturbs the clusters of other collections
/// (collections run one at a time; see AssemblyInfo.cs).
/// </summary>
public sealed class ServiceFailureFixture : ClusterFixture
{
}

[CollectionDefinition(Name)]
public sealed class ServiceFailureCollection : ICollectionFixture<ServiceFailureFixture>
{
    public const string Name = "service-failure";
}

/// <summary>
/// A real service process of the stack is stopped for a few seconds in the middle of a sale and started again. Every
/// test ends with the same books: the acknowledged orders are exactly MySQL's orders of the SKU, MySQL's available
/// stock is the stock minus the acknowledged units, Redis sold exactly the acknowledged units (no oversell, nothing
/// stranded) and no user is above the limit.
/// </summary>
[Collection(ServiceFailureCollection.Name)]
public sealed class ServiceFailureTests(ServiceFailureFixture fixture, ITestOutputHelper output)
{
    private const long Stock = 4000;
    private const int Buckets = 8;
    private const int Limit = 2;
    private const int Users = 3000;
    private static readonly TimeSpan Outage = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task NATS_stopped_mid_sale_then_restarted_loses_no_order()
    {
        var run = await RunSaleWithOutageAsync("f-nats", "nats");
        await AssertBooksAsync(run);
    }

    [Fact]
    public async Task MariaDB_stopped_mid_sale_does_not_stop_purchases_and_MySQL_converges()
    {
        var run = await RunSaleWithOutageAsync("f-mysql", "mysql");
        // Purchases do not touch MySQL: the sale went on while it was down.
        Assert.True(run.UnitsAfterFault > run.UnitsBeforeFault,
            $"no purchase was acknowledged while MariaDB was down ({run.UnitsBeforeFault} units before, {run.UnitsAfterFault} after)");
        await AssertBooksAsync(run);
    }

    [Fact]
    public async Task Redis_restarted_mid_sale_fails_purchases_meanwhile_and_the_cluster_reconnects_by_itself()
    {
        var silos = fixture.Cluster.Silos.Select(s => s.SiloAddress).ToArray();
        var run = await RunSaleWithOutageAsync("f-redis", "redis");
        // Without Redis nothing can be reserved or deducted, so buyers got Unavailable (or a failed call) and retried.
        Assert.True(run.Retries > 0, "no purchase failed while Redis was down");
        // Reconnected by itself: the same silos served the rest of the sale.
        Assert.Equal(silos, fixture.Cluster.Silos.Select(s => s.SiloAddress).ToArray());
        await AssertBooksAsync(run);
    }

    [Fact]
    public async Task Redis_killed_with_SIGKILL_mid_sale_with_appendfsync_always_loses_no_acknowledged_order()
    {
        // Every write fsynced before Redis answers, so an acknowledged deduction is on disk when the buyer hears of it.
        // The stack may run everysec; this test needs always for the crash only (a restarted Redis takes the stack's
        // setting again from its command line).
        var server = fixture.Redis.GetServers().Single();
        var original = (await server.ConfigGetAsync("appendfsync")).Single().Value;
        await server.ConfigSetAsync("appendfsync", "always");
        var silos = fixture.Cluster.Silos.Select(s => s.SiloAddress).ToArray();
        try
        {
            var run = await RunSaleWithOutageAsync("f-redis9", "redis", LocalStack.Kill9Async);
            Assert.True(run.Retries > 0, "no purchase failed while Redis was down");
            Assert.Equal(silos, fixture.Cluster.Silos.Select(s => s.SiloAddress).ToArray());
            await AssertBooksAsync(run);
        }
        finally
        {
            await RestoreAppendFsyncAsync(server, original);
        }
    }

    [Fact]
    public async Task Verify_while_NATS_is_down_answers_NATS_unavailable_instead_of_waiting_for_it()
    {
        var sale = await fixture.CreateSaleAsync("f-verify", 10, 2, 1);
        var verifier = fixture.Client.GetGrain<IReconciliationGrain>(0);
        var watch = Stopwatch.StartNew();
        DependencyUnavailableException refused;
        await LocalStack.StopAsync("nats");
        try
        {
            // NATS.Net would wait for the server's return however long it takes; the grain gives up on its own first.
            refused = await Assert.ThrowsAsync<DependencyUnavailableException>(() => verifier.VerifyAsync(sale.Sku, repair: false));
        }
        finally
        {
            await LocalStack.StartAsync("nats");
        }

        output.WriteLine($"answered after {watch.ElapsedMilliseconds} ms: {refused.Message}");
        Assert.Equal("nats", refused.Dependency);
        Assert.Equal(nameof(TimeoutException), refused.OriginalType);
        // And once NATS is back (the silo reconnects by itself), verify answers again.
        await fixture.AssertNoDriftAsync(sale.Sku);
    }

    private static async Task RestoreAppendFsyncAsync(StackExchange.Redis.IServer server, string original)
    {
        // The test's own connection may still be reconnecting after the restart.
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await server.ConfigSetAsync("appendfsync", original);
                return;
            }
            catch (StackExchange.Redis.RedisConnectionException) when (deadline.Elapsed < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(200);
            }
        }
    }

    /// <summary>
    /// Buyers (paced like real clients, so the sale outlasts the outage) buy until the sale answers sold out; when a
    /// fifth of the stock is sold, <paramref name="service"/> is stopped, left down for <see cref="Outage"/> while
    /// buyers keep buying, and started again. A buyer without a definite answer retries the same request id with
    /// backoff, as a real client would.
    /// </summary>
    private async Task<SaleUnderFault> RunSaleWithOutageAsync(string prefix, string service, Func<string, Task>? stop = null)
    {
        var sale = await fixture.CreateSaleAsync(prefix, Stock, Buckets, Limit);
        var run = await SaleUnderFault.RunAsync(fixture, sale, Users, thinkTime: TimeSpan.FromMilliseconds(20),
            untilFifthSold: TimeSpan.FromSeconds(60), untilSoldOut: TimeSpan.FromSeconds(180), async outage =>
            {
                // Before and after mean while the service is down: from its stop until just before its start.
                try
                {
                    await (stop ?? LocalStack.StopAsync)(service);
                    outage.UnitsBeforeFault = outage.History.AcknowledgedUnits;
                    // The outage itself is the point of the test: a deliberate wait while buyers keep buying.
                    await Task.Delay(Outage);
                    outage.UnitsAfterFault = outage.History.AcknowledgedUnits;
                }
                finally
                {
                    await LocalStack.StartAsync(service);
                }
            });
        output.WriteLine($"{service}: {run.History.AcknowledgedUnits} units acknowledged ({run.UnitsBeforeFault} when stopped, " +
                         $"{run.UnitsAfterFault} when restarting), {run.Describe()}, longest call {run.LongestCallMs} ms");
        return run;
    }

    private async Task AssertBooksAsync(SaleUnderFault run)
    {
        var history = run.History;
        var sku = run.Sale.Sku;
        Assert.Equal(0, history.ReplayMismatches);
        Assert.Equal(0, history.UsersAbove(Limit));
        Assert.Equal(history.Orders.Count(), history.DistinctOrderIds);

        // No oversell and nothing stranded: Redis sold exactly the acknowledged units, and the sale was bought out.
        var remaining = await fixture.RedisStockAsync(sku, Buckets);
        Assert.Equal(Stock, remaining.Sum() + history.AcknowledgedUnits);
        Assert.Equal(new long[Buckets], remaining);

        // MySQL catches up within a bounded time, with exactly the acknowledged orders.
        var deadline = Stopwatch.StartNew();
        Dictionary<string, int> stored;
        long available;
        while (true)
        {
            stored = await TestDb.OrdersAsync(sku);
            available = await MySqlAvailableAsync(sku);
            if ((stored.Count == history.DistinctOrderIds && available == Stock - history.AcknowledgedUnits)
                || deadline.Elapsed > TimeSpan.FromSeconds(60))
            {
                break;
            }

            await Task.Delay(200);
        }

        Assert.Equal(history.Orders.Select(o => o.OrderId).Order(), stored.Keys.Order());
        Assert.All(history.Orders, o => Assert.Equal(o.Quantity, stored[o.OrderId]));
        Assert.Equal(Stock - history.AcknowledgedUnits, available);
        await fixture.AssertNoDriftAsync(sku);
    }

    private static async Task<long> MySqlAvailableAsync(string sku)
    {
        await using var connection = new MySqlConnection(TestStack.MySql);
        await connection.OpenAsync();
        await using var command = new MySqlCommand("SELECT available_stock FROM inventory WHERE sku = @sku", connection);
        command.Parameters.AddWithValue("@sku", sku);
        var value = await command.ExecuteScalarAsync();
        Assert.True(value is not null and not DBNull, $"no inventory row for {sku}");
        return Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture);
    }
}
