using System.Net;
using Microsoft.Extensions.DependencyInjection;
using NATS.Client.JetStream;
using OrleansFlashSale.Messaging;
using OrleansFlashSale.Redis;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace OrleansFlashSale.Tests;

/// <summary>
/// Its own silos, so that failing Redis masters and NATS nodes never disturbs other collections. Needs the stack in
/// cluster modes (<c>./flashsale test --cluster</c>).
/// </summary>
public sealed class ClusterEngineFixture : ClusterFixture
{
}

[CollectionDefinition(Name)]
public sealed class ClusterEngineCollection : ICollectionFixture<ClusterEngineFixture>
{
    public const string Name = "cluster-engines";
}

/// <summary>
/// The unchanged system on a Redis Cluster (3 masters, one replica each) and a 3-node NATS cluster with streams at
/// 3 replicas: buckets spread over the masters, a sale bought out balances, and faults of single nodes mid-sale
/// (a replica taking over by CLUSTER FAILOVER, a master killed with SIGKILL, a NATS node stopped) oversell nothing
/// and lose or double no order. Every sale ends with the same books as the single-node fault tests.
/// </summary>
[Collection(ClusterEngineCollection.Name)]
[Trait("Category", "Cluster")]
public sealed class ClusterEngineTests(ClusterEngineFixture fixture, ITestOutputHelper output)
{
    private const long Stock = 1200;
    private const int Buckets = 12;
    private const int Limit = 2;
    private const int Users = 1000;

    [Fact]
    public async Task Buckets_of_one_SKU_spread_over_every_master_and_a_bought_out_sale_balances()
    {
        var masters = await SettledMastersAsync();
        Assert.Equal(3, masters.Length);
        var sale = await fixture.CreateSaleAsync("c-spread", Stock, Buckets, Limit);

        // SCAN runs per node on a cluster: every master is asked for the stock keys it holds.
        var perMaster = new List<int>();
        foreach (var master in masters)
        {
            var keys = new List<RedisKey>();
            await foreach (var key in master.KeysAsync(pattern: $"{{fs:{sale.Sku}:b*}}:stock", pageSize: 1000))
            {
                keys.Add(key);
            }

            perMaster.Add(keys.Count);
            // Each key is on the master that serves its slot, i.e. where the client routes the bucket's scripts.
            Assert.All(keys, k => Assert.Equal(master.EndPoint, fixture.Redis.GetDatabase().IdentifyEndpoint(k)));
        }

        output.WriteLine($"stock keys per master: {string.Join(", ", perMaster)}");
        Assert.Equal(Buckets, perMaster.Sum());
        Assert.All(perMaster, n => Assert.True(n > 0, $"a master holds no bucket of the SKU: {string.Join(", ", perMaster)}"));

        var run = await RunSaleAsync(sale, fault: null);
        await AssertBooksAsync(run);
    }

    [Fact]
    public async Task CLUSTER_FAILOVER_of_a_replica_mid_sale_oversells_nothing_and_the_sale_goes_on()
    {
        var sale = await fixture.CreateSaleAsync("c-failover", Stock, Buckets, Limit);
        var slot = fixture.Redis.HashSlot(RedisKeys.Stock(sale.Sku, 0));
        var run = await RunSaleAsync(sale, async () =>
        {
            var topology = await TopologyAsync();
            var master = topology.GetBySlot(slot)!;
            var replica = Assert.Single(master.Children);
            await LocalStack.RunAsync("failover", "redis-node", NodeNumber(replica.EndPoint!).ToString(System.Globalization.CultureInfo.InvariantCulture));
            await WaitUntilSlotServedByAsync(slot, replica.EndPoint!);
            output.WriteLine($"slot {slot}: {master.EndPoint} -> {replica.EndPoint}");
        });
        await AssertBooksAsync(run);
    }

    [Fact]
    public async Task A_master_killed_mid_sale_is_replaced_by_its_replica_without_oversell()
    {
        var sale = await fixture.CreateSaleAsync("c-kill9", Stock, Buckets, Limit);
        var slot = fixture.Redis.HashSlot(RedisKeys.Stock(sale.Sku, 0));
        var run = await RunSaleAsync(sale, async () =>
        {
            var topology = await TopologyAsync();
            var master = topology.GetBySlot(slot)!;
            var replica = Assert.Single(master.Children);
            var node = NodeNumber(master.EndPoint!).ToString(System.Globalization.CultureInfo.InvariantCulture);
            await LocalStack.RunAsync("kill9", "redis-node", node);
            try
            {
                // cluster-node-timeout (3 s locally) to detect the failure, then the replica's election.
                await WaitUntilSlotServedByAsync(slot, replica.EndPoint!);
                output.WriteLine($"slot {slot}: {master.EndPoint} killed, {replica.EndPoint} promoted");
            }
            finally
            {
                // Back as a replica of the promoted node; the next tests find a full cluster again.
                await LocalStack.RunAsync("start-one", "redis-node", node);
            }
        });
        await AssertBooksAsync(run);
    }

    [Fact]
    public async Task A_bucket_slot_resharded_to_another_master_mid_sale_balances()
    {
        var sale = await fixture.CreateSaleAsync("c-reshard", Stock, Buckets, Limit);
        var slot = fixture.Redis.HashSlot(RedisKeys.Stock(sale.Sku, 0));
        var run = await RunSaleAsync(sale, async () =>
        {
            var topology = await TopologyAsync();
            var source = topology.GetBySlot(slot)!;
            var target = topology.Nodes.First(n => !n.IsReplica && n.NodeId != source.NodeId);
            var from = fixture.Redis.GetServer(source.EndPoint!);
            var to = fixture.Redis.GetServer(target.EndPoint!);
            var targetEndPoint = (IPEndPoint)target.EndPoint!;
            var password = Environment.GetEnvironmentVariable("FLASHSALE_REDIS_PASSWORD")!;

            // The steps of redis-cli --cluster reshard for one slot, while buyers keep buying: clients are sent ASK
            // for keys already moved and MOVED once the slot belongs to the target.
            await to.ExecuteAsync("CLUSTER", "SETSLOT", slot, "IMPORTING", source.NodeId);
            await from.ExecuteAsync("CLUSTER", "SETSLOT", slot, "MIGRATING", target.NodeId);
            var moved = 0;
            while (true)
            {
                var keys = (RedisResult[])(await from.ExecuteAsync("CLUSTER", "GETKEYSINSLOT", slot, 50))!;
                if (keys.Length == 0)
                {
                    break;
                }

                var args = new List<object> { targetEndPoint.Address.ToString(), targetEndPoint.Port, "", 0, 5000, "AUTH", password, "KEYS" };
                args.AddRange(keys.Select(k => (object)(string)k!));
                await from.ExecuteAsync("MIGRATE", args);
                moved += keys.Length;
            }

            foreach (var master in topology.Nodes.Where(n => !n.IsReplica))
            {
                await fixture.Redis.GetServer(master.EndPoint!).ExecuteAsync("CLUSTER", "SETSLOT", slot, "NODE", target.NodeId);
            }

            await WaitUntilSlotServedByAsync(slot, target.EndPoint!);
            output.WriteLine($"slot {slot}: {moved} keys moved from {source.EndPoint} to {target.EndPoint}");
        });
        await AssertBooksAsync(run);
    }

    [Fact]
    public async Task A_NATS_node_stopped_mid_sale_loses_and_doubles_no_order()
    {
        var nats = fixture.Cluster.Silos[0].ServiceProvider.GetRequiredService<JetStreamConnection>();
        var deductions = await nats.JetStream.GetStreamAsync(nats.Topology.DeductionsStream);
        // The streams were created with FlashSale:Nats:Replicas = 3: a leader and two current replicas.
        Assert.Equal(3, deductions.Info.Config.NumReplicas);
        Assert.Equal(2, deductions.Info.Cluster?.Replicas?.Count);
        // The order writer's durable consumer inherits the stream's replicas, so its position survives a node too.
        var writer = await nats.JetStream.GetConsumerAsync(nats.Topology.DeductionsStream, "orders-writer");
        Assert.Equal(2, writer.Info.Cluster?.Replicas?.Count);

        var sale = await fixture.CreateSaleAsync("c-nats", Stock, Buckets, Limit);
        var run = await RunSaleAsync(sale, async () =>
        {
            // The leader of the deductions stream: the node whose loss forces an election on the busiest stream.
            await deductions.RefreshAsync();
            var leader = deductions.Info.Cluster!.Leader!;
            var node = leader[^1..]; // server names are flashsale-n1..flashsale-n3
            await LocalStack.RunAsync("stop-one", "nats-node", node);
            try
            {
                // A deliberate outage while buyers keep buying.
                await Task.Delay(TimeSpan.FromSeconds(5));
            }
            finally
            {
                await LocalStack.RunAsync("start-one", "nats-node", node);
            }

            output.WriteLine($"stopped and restarted nats-node {node} ({leader}, leader of {nats.Topology.DeductionsStream})");
        });
        await AssertBooksAsync(run);
    }

    /// <summary>
    /// The masters once the client's view has settled: after a fault test in the same run, a killed master comes
    /// back as a replica, and the multiplexer lists it as a master until it reloads the topology.
    /// </summary>
    private async Task<IServer[]> SettledMastersAsync()
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        var masters = Masters();
        while (masters.Length != 3 && DateTime.UtcNow < deadline)
        {
            await fixture.Redis.ConfigureAsync();
            await Task.Delay(250);
            masters = Masters();
        }

        return masters;
    }

    private IServer[] Masters() =>
        fixture.Redis.GetServers().Where(s => s.IsConnected && !s.IsReplica).OrderBy(s => s.EndPoint.ToString()).ToArray();

    /// <summary>The cluster's view from any node that answers (one may just have been killed).</summary>
    private async Task<ClusterConfiguration> TopologyAsync()
    {
        foreach (var server in fixture.Redis.GetServers().Where(s => s.IsConnected))
        {
            try
            {
                if (await server.ClusterNodesAsync() is { } nodes)
                {
                    return nodes;
                }
            }
            catch (RedisException)
            {
                // That node is down or restarting: ask the next.
            }
        }

        throw new InvalidOperationException("no Redis node answered CLUSTER NODES");
    }

    private async Task WaitUntilSlotServedByAsync(int slot, EndPoint expected)
    {
        await TestDb.WaitUntilAsync(async () =>
        {
            var node = (await TopologyAsync()).GetBySlot(slot);
            return node is not null && node.EndPoint!.Equals(expected) && !node.IsFail && !node.IsPossiblyFail;
        }, TimeSpan.FromSeconds(60));
    }

    /// <summary>stack.sh numbers redis-node N from the first seed's port (FLASHSALE_CLUSTER_PORT_BASE).</summary>
    private static int NodeNumber(EndPoint endPoint)
    {
        var first = TestStack.Redis.Split(',').Where(p => p.Contains(':', StringComparison.Ordinal) && !p.Contains('=', StringComparison.Ordinal))
            .Min(p => int.Parse(p[(p.LastIndexOf(':') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
        var port = endPoint switch
        {
            IPEndPoint ip => ip.Port,
            DnsEndPoint dns => dns.Port,
            _ => throw new InvalidOperationException($"unexpected endpoint {endPoint}"),
        };
        return port - first + 1;
    }

    /// <summary>
    /// 16 buyers (paced like real clients, so that the sale outlasts the fault) buy until sold out; when a fifth of
    /// the stock is sold, <paramref name="fault"/> runs while they keep buying. A buyer without a definite answer
    /// replays the same request id with backoff, as a real client would.
    /// </summary>
    private async Task<SaleUnderFault> RunSaleAsync(SaleDefinition sale, Func<Task>? fault)
    {
        var run = await SaleUnderFault.RunAsync(fixture, sale, Users, thinkTime: TimeSpan.FromMilliseconds(10),
            untilFifthSold: TimeSpan.FromSeconds(120), untilSoldOut: TimeSpan.FromSeconds(240), fault is null ? null : async during =>
            {
                during.UnitsBeforeFault = during.History.AcknowledgedUnits;
                await fault();
                during.UnitsAfterFault = during.History.AcknowledgedUnits;
            });
        output.WriteLine($"{run.History.AcknowledgedUnits} units acknowledged in {run.Elapsed.TotalSeconds:F1} s " +
                         $"({run.UnitsBeforeFault} when the fault began, {run.UnitsAfterFault} when it was over), {run.Describe()}");
        return run;
    }

    /// <summary>
    /// sold == stock with every bucket at 0 in Redis (no oversell: acknowledged units plus Redis remaining is the
    /// stock), no user above the limit, every replay answered with its original order, MySQL holding exactly the
    /// acknowledged orders (none lost, none doubled), and verify reporting no drift.
    /// </summary>
    private async Task AssertBooksAsync(SaleUnderFault run)
    {
        var history = run.History;
        var sku = run.Sale.Sku;
        Assert.Equal(0, history.ReplayMismatches);
        Assert.Equal(0, history.UsersAbove(Limit));
        Assert.Equal(history.Orders.Count(), history.DistinctOrderIds);
        Assert.Equal(Stock, history.AcknowledgedUnits);
        Assert.Equal(new long[Buckets], await fixture.RedisStockAsync(sku, Buckets));

        await TestDb.WaitUntilAsync(async () =>
            await TestDb.ScalarAsync("SELECT COUNT(*) FROM orders WHERE sku = @sku", ("@sku", sku)) == history.DistinctOrderIds
            && await TestDb.ScalarAsync("SELECT available_stock FROM inventory WHERE sku = @sku", ("@sku", sku)) == 0,
            TimeSpan.FromSeconds(60));
        var stored = await TestDb.OrdersAsync(sku);
        Assert.Equal(history.Orders.Select(o => o.OrderId).Order(), stored.Keys.Order());
        Assert.All(history.Orders, o => Assert.Equal(o.Quantity, stored[o.OrderId]));
        Assert.Equal(Stock, await TestDb.ScalarAsync("SELECT SUM(quantity) FROM orders WHERE sku = @sku", ("@sku", sku)));
        await fixture.AssertNoDriftAsync(sku);
    }
}
