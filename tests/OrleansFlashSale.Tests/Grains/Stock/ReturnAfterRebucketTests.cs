using System.Net;
using System.Net.Http.Json;
using MySqlConnector;
using OrleansFlashSale.Cli;
using OrleansFlashSale.Redis;

namespace OrleansFlashSale.Tests;

/// <summary>Returns of cancelled orders whose bucket a live shrink removed, and verify's view of removed buckets.</summary>
[Collection(ClusterCollection.Name)]
public sealed class ReturnAfterRebucketTests(ClusterFixture fixture)
{
    [Fact]
    public async Task A_cancel_racing_a_shrink_returns_the_unit_to_a_live_bucket_where_it_sells_again()
    {
        // One unit per bucket, quota shard = home bucket; the buyer's bucket (4 or above) goes away in the shrink to 4.
        var sale = await fixture.CreateSaleAsync("ret-shrink", stock: 8, buckets: 8, perUserLimit: 1, quotaShards: 8);
        var buyer = Users("ret-buyer").First(u => GrainKeys.QuotaShard(u, 8) >= 4);
        var bought = await fixture.BuyAsync(sale, buyer, "r1");
        Assert.Equal(PurchaseOutcome.Created, bought.Outcome);
        var order = bought.Order!;
        Assert.True(order.Bucket >= 4, $"the order came from bucket {order.Bucket}");
        await WaitForStatusAsync(order.OrderId, "pending_payment");

        // The cancel reads the layout (8 buckets, so its own bucket is the target), then waits for the order's row,
        // which this transaction holds while the shrink runs: the return reaches Redis after the bucket was removed.
        await using var holder = new MySqlConnection(TestStack.MySql);
        await holder.OpenAsync();
        await using var hold = await holder.BeginTransactionAsync();
        await using (var lockRow = new MySqlCommand("SELECT order_id FROM orders WHERE order_id = @id FOR UPDATE", holder, hold))
        {
            lockRow.Parameters.AddWithValue("@id", order.OrderId);
            Assert.Equal(order.OrderId, (string?)await lockRow.ExecuteScalarAsync());
        }

        var cancel = fixture.Http.PostAsJsonAsync($"/api/orders/{order.OrderId}/cancel", new { userId = buyer });
        await WaitForBlockedCancelAsync(order.OrderId);
        Assert.Equal(RebucketOutcome.Done, (await fixture.Client.Product(sale.Sku).RebucketAsync(4)).Outcome);
        await hold.RollbackAsync();
        using (var cancelled = await cancel)
        {
            Assert.Equal(HttpStatusCode.OK, cancelled.StatusCode);
        }

        // Every unit is in a live bucket, the returned one included; the removed buckets hold none.
        var stock = await fixture.RedisStockAsync(sale.Sku, 8);
        Assert.Equal([0, 0, 0, 0], stock[4..]);
        Assert.Equal(8, stock[..4].Sum());
        var report = await fixture.Client.GetGrain<IReconciliationGrain>(0).VerifyAsync(sale.Sku, repair: false);
        Assert.Equal(0, report!.UnitsInRemovedBuckets);
        await fixture.AssertNoDriftAsync(sale.Sku);

        // Buyers whose home bucket is live take all 8 units, the returned one too; after them the sale is sold out.
        var created = 0;
        var deadline = DateTime.UtcNow.AddSeconds(20);
        foreach (var user in Users("ret-later").Where(u => GrainKeys.QuotaShard(u, 8) < 4))
        {
            if (created == 8)
            {
                Assert.Equal(PurchaseOutcome.SoldOut, (await fixture.BuyAsync(sale, user, "r1")).Outcome);
                break;
            }

            var result = await fixture.BuyAsync(sale, user, "r1");
            Assert.True(result.Outcome is PurchaseOutcome.Created or PurchaseOutcome.SoldOut, $"{user}: {result.Outcome}");
            // A sold-out answer can only come from a stale routing view (kept a second) before all 8 are sold.
            Assert.True(result.Outcome == PurchaseOutcome.Created || DateTime.UtcNow < deadline, $"only {created} of 8 units sold again");
            if (result.Outcome == PurchaseOutcome.Created)
            {
                created++;
            }
            else
            {
                await Task.Delay(100);
            }
        }

        Assert.Equal(8, created);
        Assert.Equal(0, (await fixture.RedisStockAsync(sale.Sku, 8)).Sum());
        await fixture.AssertNoDriftAsync(sale.Sku);
        Assert.Equal(sale.Stock, (await fixture.Client.GetGrain<IReconciliationGrain>(0).VerifyAsync(sale.Sku, repair: false))!.RedisSold);

        // A grow brings the removed buckets back: their marks go, so returns reach them again.
        var db = fixture.Redis.GetDatabase();
        Assert.True(await db.KeyExistsAsync(RedisKeys.Removed(sale.Sku, 4)));
        Assert.Equal(RebucketOutcome.Done, (await fixture.Client.Product(sale.Sku).RebucketAsync(8)).Outcome);
        Assert.All(Enumerable.Range(0, 8), b => Assert.False(db.KeyExists(RedisKeys.Removed(sale.Sku, b))));
    }

    [Fact]
    public async Task Units_in_a_removed_bucket_are_reported_by_verify_and_its_command()
    {
        var sale = await fixture.CreateSaleAsync("ret-stranded", stock: 8, buckets: 8, perUserLimit: 1, quotaShards: 8);
        Assert.Equal(RebucketOutcome.Done, (await fixture.Client.Product(sale.Sku).RebucketAsync(4)).Outcome);
        var verifier = fixture.Client.GetGrain<IReconciliationGrain>(0);
        Assert.Equal(0, (await verifier.VerifyAsync(sale.Sku, repair: false))!.UnitsInRemovedBuckets);

        // Two units move from live bucket 0 into removed bucket 6: the books still balance, yet neither the overflow
        // path nor the sold-out view sees them (only bucket 6's own home buyers might still find them).
        var db = fixture.Redis.GetDatabase();
        Assert.Equal(0, await db.StringDecrementAsync(RedisKeys.Stock(sale.Sku, 0), 2));
        Assert.Equal(2, await db.StringIncrementAsync(RedisKeys.Stock(sale.Sku, 6), 2));

        var report = (await verifier.VerifyAsync(sale.Sku, repair: false))!;
        Assert.Equal(2, report.UnitsInRemovedBuckets);
        Assert.True(report.RedisEquation.Holds);
        Assert.True(report.Drift);
        Assert.Equal(["2 units in buckets removed by re-bucketing, outside the live layout"], report.Problems);

        using var client = new GatewayClient(fixture.Http.BaseAddress!.ToString(), TestStack.AdminToken);
        var (exit, output) = await CaptureAsync(() => VerifyCommand.RunAsync([sale.Sku], client));
        Assert.Equal(1, exit);
        Assert.Contains("2 units in buckets removed by re-bucketing, outside the live layout", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_removed_buckets_return_script_sends_an_order_on_once_and_every_retry_the_same_way()
    {
        var sku = ClusterFixture.NewSku("lua-return");
        var db = fixture.Redis.GetDatabase();
        await db.StringSetAsync(RedisKeys.Stock(sku, 1), 5);
        await db.StringSetAsync(RedisKeys.Stock(sku, 5), 0);
        await db.StringSetAsync(RedisKeys.Removed(sku, 5), "1");

        // Removed, no target named: nothing written. Then the first call that names one fixes it.
        Assert.Equal(new long[] { 2, 0 }, await ReturnAsync(db, sku, 5, "o1", liveBucket: -1));
        Assert.False(await db.KeyExistsAsync(RedisKeys.ReturnMarker(sku, 5, "o1")));
        Assert.Equal(new long[] { 1, 0, 1 }, await ReturnAsync(db, sku, 5, "o1", liveBucket: 1));
        // A retry naming another bucket (the layout changed since) still goes the first way, even once a grow has
        // brought bucket 5 back: the order's units never land in it.
        Assert.Equal(new long[] { 1, 0, 1 }, await ReturnAsync(db, sku, 5, "o1", liveBucket: 2));
        await db.KeyDeleteAsync(RedisKeys.Removed(sku, 5));
        Assert.Equal(new long[] { 1, 0, 1 }, await ReturnAsync(db, sku, 5, "o1", liveBucket: -1));
        Assert.Equal(0, (long)await db.StringGetAsync(RedisKeys.Stock(sku, 5)));

        // The live bucket takes the units once; another order returns into the live bucket 5 itself.
        Assert.Equal(new long[] { 0, 7 }, await ReturnAsync(db, sku, 1, "o1", liveBucket: -1));
        Assert.Equal(new long[] { 0, 7 }, await ReturnAsync(db, sku, 1, "o1", liveBucket: -1));
        Assert.Equal(new long[] { 0, 2 }, await ReturnAsync(db, sku, 5, "o2", liveBucket: -1));
    }

    private static async Task<long[]> ReturnAsync(StackExchange.Redis.IDatabase db, string sku, int bucket, string orderId, int liveBucket) =>
        (long[])(await RedisScripts.EvaluateAsync(db, new RedisScripts().Return,
            [RedisKeys.Stock(sku, bucket), RedisKeys.ReturnMarker(sku, bucket, orderId), RedisKeys.Removed(sku, bucket)],
            [2, 3600, liveBucket]))!;

    private static IEnumerable<string> Users(string prefix) => Enumerable.Range(0, 10_000).Select(i => $"{prefix}-{i}");

    private async Task WaitForStatusAsync(string orderId, string status)
    {
        var orders = fixture.Client.GetGrain<IOrdersGrain>(0);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while ((await orders.GetAsync(orderId))?.Status != status)
        {
            Assert.True(DateTime.UtcNow < deadline, $"order {orderId} did not reach {status}");
            await Task.Delay(50);
        }
    }

    /// <summary>Until the cancel's UPDATE of the order waits for the row lock (MySqlConnector sends the values inline).</summary>
    private static async Task WaitForBlockedCancelAsync(string orderId)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (await TestDb.ScalarAsync(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'UPDATE orders SET status%' AND INFO LIKE @p",
            ("@p", $"%{orderId}%")) == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the cancel never reached MySQL");
            await Task.Delay(20);
        }
    }

    private static async Task<(int Exit, string Output)> CaptureAsync(Func<Task<int>> command)
    {
        var output = new StringWriter();
        var saved = Spectre.Console.AnsiConsole.Console;
        Spectre.Console.AnsiConsole.Console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings
        {
            Out = new Spectre.Console.AnsiConsoleOutput(output),
        });
        try
        {
            var exit = await command();
            // Spectre wraps long lines at the console width when output is not a terminal.
            return (exit, output.ToString().Replace("\r", "", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal)
                .Replace("  ", " ", StringComparison.Ordinal));
        }
        finally
        {
            Spectre.Console.AnsiConsole.Console = saved;
        }
    }
}
