using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using MySqlConnector;
using OrleansFlashSale.Client.Api.Dashboard;
using OrleansFlashSale.Redis;
using StackExchange.Redis;
using Xunit.Sdk;

namespace OrleansFlashSale.Tests;

/// <summary>
/// When verify judges a sale, and from what: at rest per sale (another SKU's writer backlog is not this sale's), from
/// counts that outlive the records' TTL, cheaply for the dashboard; and the suite's own drift assertion waits for rest.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class VerifyAtRestTests(ClusterFixture fixture)
{
    private IReconciliationGrain Verifier => fixture.Client.GetGrain<IReconciliationGrain>(0);

    private IDatabase Db => fixture.Redis.GetDatabase();

    [Fact]
    public async Task A_sale_whose_orders_are_all_stored_is_judged_while_another_sales_order_waits_for_the_writer()
    {
        var sale = await fixture.CreateSaleAsync("rest-own", stock: 10, buckets: 1, perUserLimit: 1);
        Assert.Equal(6, (await fixture.BuyOutAsync(sale, users: 6, requests: 6)).AcknowledgedUnits);
        await fixture.AssertNoDriftAsync(sale.Sku);
        // A unit goes missing from Redis: remaining + live units is one below the stock from now on.
        await Db.StringDecrementAsync(RedisKeys.Stock(sale.Sku, 0));

        // Another sale's order is held on its way to MySQL: its inventory row is locked, so the writer's transaction
        // for it waits, and the writer's backlog (one consumer for every SKU) is not empty meanwhile.
        var other = await fixture.CreateSaleAsync("rest-other", stock: 5, buckets: 1, perUserLimit: 1);
        await using var connection = new MySqlConnection(TestStack.MySql);
        await connection.OpenAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await using (var lockRow = new MySqlCommand("SELECT available_stock FROM inventory WHERE sku = @sku FOR UPDATE", connection, transaction))
        {
            lockRow.Parameters.AddWithValue("@sku", other.Sku);
            Assert.Equal(5L, await lockRow.ExecuteScalarAsync());
        }

        try
        {
            Assert.Equal(PurchaseOutcome.Created, (await fixture.BuyAsync(other, "held", "h1")).Outcome);
            var report = await ReportWhileTheWriterIsBehindAsync(sale.Sku);

            Assert.True(report.AtRest, $"not at rest with writer backlog {report.Messages.WriterPending}");
            Assert.True(report.Drift);
            Assert.Equal((9L, 10L, false), (report.RedisEquation.Left, report.RedisEquation.Right, report.RedisEquation.Holds));
            Assert.Contains(report.Problems, p => p.StartsWith("redis remaining + mysql live units == stock: 9 != 10", StringComparison.Ordinal));
            var summary = await Verifier.SummarizeAsync(sale.Sku);
            Assert.True(summary!.AtRest && summary.Drift && !summary.RedisEquation.Holds);

            // The held sale itself is in flight: not judged, no drift.
            var held = await Verifier.VerifyAsync(other.Sku, repair: false);
            Assert.False(held!.AtRest);
            Assert.False(held.Drift, string.Join("; ", held.Problems));
        }
        finally
        {
            await transaction.RollbackAsync();
        }

        await fixture.AssertNoDriftAsync(other.Sku);
    }

    [Fact]
    public async Task Once_the_records_TTL_has_passed_verify_still_balances_and_still_finds_real_drift()
    {
        // A sale with an end, so that every record has a TTL (a sale without one keeps its records until closed).
        var sale = await fixture.CreateSaleAsync("rest-ttl", stock: 40, buckets: 2, perUserLimit: 1, endsAt: fixture.Time.GetUtcNow().AddHours(1));
        var history = await fixture.BuyOutAsync(sale, users: 40, requests: 40);
        Assert.Equal(40, history.AcknowledgedUnits);
        await fixture.AssertNoDriftAsync(sale.Sku);

        // What the TTLs do once the sale is over and its retention has passed: every key of the sale that has one (order markers, request records, user
        // counters, fences, buyers) is gone; the stock keys and the logs have none.
        var expired = await ExpireSaleKeysAsync(sale.Sku, shards: 16);
        Assert.True(expired >= 40, $"only {expired} keys had a TTL");
        Assert.True(await Db.KeyExistsAsync(RedisKeys.Stock(sale.Sku, 0)));

        var report = await Verifier.VerifyAsync(sale.Sku, repair: false);
        Assert.False(report!.Drift, string.Join("; ", report.Problems));
        Assert.True(report.AtRest);
        Assert.Equal(0, report.UnknownToRedis.Count);
        Assert.Equal(40L, report.OrdersWithoutProof);
        Assert.Equal(40L, report.RedisCommittedOrders);
        var summary = await Verifier.SummarizeAsync(sale.Sku);
        Assert.False(summary!.Drift, string.Join("; ", summary.Problems));
        Assert.True(summary.AtRest);
        Assert.Null(summary.OrdersWithoutProof);

        // A real drift is still found: an order in MySQL that Redis never committed ...
        var phantom = await InsertPhantomAsync(sale.Sku, bucket: 1);
        report = await Verifier.VerifyAsync(sale.Sku, repair: false);
        Assert.True(report!.Drift);
        Assert.Equal(1, report.UnknownToRedis.Count);
        Assert.Contains(phantom, report.UnknownToRedis.OrderIds);
        Assert.Contains(report.Problems, p => p.StartsWith("1 orders in MySQL are unknown to Redis", StringComparison.Ordinal));
        summary = await Verifier.SummarizeAsync(sale.Sku);
        Assert.True(summary!.Drift);
        Assert.Equal(1, summary.UnknownToRedis.Count);
        Assert.Equal(1, await ExecuteAsync("DELETE FROM orders WHERE order_id = @id", phantom, sale.Sku));

        // ... and a unit Redis sold that MySQL lost.
        var lost = history.Orders.First();
        Assert.Equal(2, await ExecuteAsync("DELETE FROM orders WHERE order_id = @id; UPDATE inventory SET available_stock = available_stock + 1 WHERE sku = @sku",
            lost.OrderId, sale.Sku));

        report = await Verifier.VerifyAsync(sale.Sku, repair: false);
        Assert.True(report!.AtRest);
        Assert.True(report.Drift);
        Assert.Equal((39L, 40L, false), (report.RedisEquation.Left, report.RedisEquation.Right, report.RedisEquation.Holds));
        Assert.Equal(0, report.UnknownToRedis.Count);
        Assert.True((await Verifier.SummarizeAsync(sale.Sku))!.Drift);
    }

    [Fact]
    public async Task The_dashboards_refresh_reads_no_order_one_by_one_and_a_full_verify_still_does()
    {
        const int orders = 150;
        var sale = await fixture.CreateSaleAsync("rest-dash", stock: orders, buckets: 2, perUserLimit: 1);
        Assert.Equal(orders, (await fixture.BuyOutAsync(sale, users: orders, requests: orders)).AcknowledgedUnits);
        await fixture.AssertNoDriftAsync(sale.Sku);

        // The gateway's dashboard service on a clock the test moves: each build past the cache age reads the books anew.
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var dashboard = new DashboardService(fixture.Client, fixture.GatewayServices.GetRequiredService<PurchaseRates>(), clock,
            NullLogger<DashboardService>.Instance);
        var before = await GetCallsAsync();
        var checkedAt = new HashSet<DateTimeOffset>();
        for (var refresh = 0; refresh < 3; refresh++)
        {
            var books = (await dashboard.BuildAsync(sale.Sku))!.Books;
            Assert.NotNull(books);
            Assert.True(books.AtRest && !books.Drift, string.Join("; ", books.Problems));
            Assert.Equal(orders, books.PersistedUnits);
            checkedAt.Add(books.CheckedAt);
            clock.Advance(DashboardService.BooksMaxAge + TimeSpan.FromSeconds(1));
        }

        var refreshed = await GetCallsAsync();
        Assert.Equal(3, checkedAt.Count);
        // Three reads of the books: a stock key per bucket each, not a marker and a record per order (900).
        Assert.True(refreshed - before < orders, $"{refreshed - before} GETs and HGETs for three refreshes of a sale of {orders} orders");

        var full = await Verifier.VerifyAsync(sale.Sku, repair: false);
        var verified = await GetCallsAsync();
        Assert.True(verified - refreshed >= 2 * orders, $"{verified - refreshed} GETs and HGETs for a full verify of {orders} orders");
        Assert.False(full!.Drift, string.Join("; ", full.Problems));
        Assert.Equal(0L, full.OrdersWithoutProof);
    }

    [Fact]
    public async Task The_suites_drift_assertion_waits_for_rest_and_then_fails_on_an_equation_that_does_not_hold()
    {
        var sale = await fixture.CreateSaleAsync("rest-assert", stock: 10, buckets: 1, perUserLimit: 1);
        await fixture.BuyOutAsync(sale, users: 5, requests: 5);
        await fixture.AssertNoDriftAsync(sale.Sku);

        // A unit missing from Redis, while an entry younger than the grace period keeps the sale in flight for ~10 s.
        await Db.StringDecrementAsync(RedisKeys.Stock(sale.Sku, 0));
        var now = (RedisResult[])(await Db.ExecuteAsync("TIME"))!;
        await Db.StreamAddAsync(RedisKeys.Log(sale.Sku, 0),
        [
            new NameValueEntry("o", "in-flight-" + Guid.NewGuid().ToString("N")[..12]),
            new NameValueEntry("u", "u-in-flight"),
            new NameValueEntry("r", "r-in-flight"),
            new NameValueEntry("q", 1),
            new NameValueEntry("b", 0),
            new NameValueEntry("t", (long)now[0] * 1000 + (long)now[1] / 1000),
        ]);

        // In flight for longer than the bound: that is a failure, not a pass.
        var unsettled = await Assert.ThrowsAnyAsync<XunitException>(() => fixture.AssertNoDriftAsync(sale.Sku, TimeSpan.FromSeconds(1)));
        Assert.Contains("never came to rest", unsettled.Message, StringComparison.Ordinal);

        // Waited for: once the entry is past the grace period the sale is at rest, and the equation is checked.
        var drifted = await Assert.ThrowsAnyAsync<XunitException>(() => fixture.AssertNoDriftAsync(sale.Sku));
        Assert.Contains("redis remaining + mysql live units == stock: 9 != 10", drifted.Message, StringComparison.Ordinal);
    }

    /// <summary>Verifies until a report shows the writer behind (the held order reached it); that report.</summary>
    private async Task<ReconciliationReport> ReportWhileTheWriterIsBehindAsync(string sku)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            var report = await Verifier.VerifyAsync(sku, repair: false);
            Assert.NotNull(report);
            if (report.Messages.WriterPending > 0)
            {
                return report;
            }

            Assert.True(DateTime.UtcNow < deadline, "the held order never showed in the writer's backlog");
            await Task.Delay(100);
        }
    }

    /// <summary>Deletes every key of the sale's hash tags that has a TTL, as expiry would; returns how many.</summary>
    private async Task<int> ExpireSaleKeysAsync(string sku, int shards)
    {
        var server = fixture.Redis.GetServers().Single();
        var deleted = 0;
        for (var tag = 0; tag < shards; tag++)
        {
            await foreach (var key in server.KeysAsync(pattern: RedisKeys.BucketTag(sku, tag) + "*", pageSize: 500))
            {
                if (await Db.KeyTimeToLiveAsync(key) is not null && await Db.KeyDeleteAsync(key))
                {
                    deleted++;
                }
            }
        }

        return deleted;
    }

    /// <summary>Runs <paramref name="sql"/> with @id and @sku; the rows it changed.</summary>
    private static async Task<int> ExecuteAsync(string sql, string id, string sku)
    {
        await using var connection = new MySqlConnection(TestStack.MySql);
        await connection.OpenAsync();
        await using var command = new MySqlCommand(sql, connection);
        command.Parameters.AddWithValue("@id", id);
        command.Parameters.AddWithValue("@sku", sku);
        return await command.ExecuteNonQueryAsync();
    }

    private static async Task<string> InsertPhantomAsync(string sku, int bucket)
    {
        var phantom = "phantom-" + Guid.NewGuid().ToString("N")[..12];
        await using var connection = new MySqlConnection(TestStack.MySql);
        await connection.OpenAsync();
        await using var insert = new MySqlCommand(
            "INSERT INTO orders (order_id, request_id, sku, user_id, quantity, bucket, status, commit_batch, committed_at_ms) " +
            "VALUES (@id, 'r-phantom', @sku, 'u-phantom', 1, @bucket, 'paid', @batch, 0)", connection);
        insert.Parameters.AddWithValue("@id", phantom);
        insert.Parameters.AddWithValue("@sku", sku);
        insert.Parameters.AddWithValue("@bucket", bucket);
        insert.Parameters.AddWithValue("@batch", Guid.NewGuid().ToString("N"));
        Assert.Equal(1, await insert.ExecuteNonQueryAsync());
        return phantom;
    }

    /// <summary>GET calls Redis has served so far (INFO commandstats): the proofs are read with GET.</summary>
    /// <summary>Reads of single values so far: GET (stock keys, order markers) and HGET (request records).</summary>
    private async Task<long> GetCallsAsync()
    {
        var info = (string)(await fixture.Redis.GetServers().Single().ExecuteAsync("INFO", "commandstats"))!;
        return info.Split('\n')
            .Where(l => l.StartsWith("cmdstat_get:", StringComparison.Ordinal) || l.StartsWith("cmdstat_hget:", StringComparison.Ordinal))
            .Sum(l => long.Parse(l[(l.IndexOf("calls=", StringComparison.Ordinal) + "calls=".Length)..l.IndexOf(',', StringComparison.Ordinal)],
                CultureInfo.InvariantCulture));
    }
}
