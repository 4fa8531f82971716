using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using MySqlConnector;
using OrleansFlashSale.Redis;
using StackExchange.Redis;

namespace OrleansFlashSale.Tests;

/// <summary>
/// <c>verify</c> on the real services: the books balance after a sale, drift is found where it was planted, and
/// <c>repair</c> brings a lost order back exactly once.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ReconciliationTests(ClusterFixture fixture)
{
    private IReconciliationGrain Verifier => fixture.Client.GetGrain<IReconciliationGrain>(0);

    [Fact]
    public async Task Verify_of_a_settled_bought_out_sale_reports_no_drift_and_exact_books()
    {
        var sale = await fixture.CreateSaleAsync("rec-ok", stock: 300, buckets: 4, perUserLimit: 3);
        var history = await fixture.BuyOutAsync(sale, users: 150, requests: 600);
        Assert.Equal(300, history.AcknowledgedUnits);

        var report = await SettledAsync(sale.Sku);
        Assert.False(report.Drift, string.Join("; ", report.Problems));
        Assert.Empty(report.Problems);
        Assert.True(report.AtRest);
        Assert.Equal(300, report.Stock);
        Assert.Equal(4, report.Buckets);
        Assert.Equal(0, report.RedisRemaining);
        Assert.Equal(300, report.RedisSold);
        Assert.Equal(300, report.MySqlLiveUnits);
        Assert.Equal(0L, report.AvailableStock);
        // No returns: the order rows are the deduction records, nothing is logged.
        Assert.Equal(0, report.InventoryLogRows);
        var pending = Assert.Single(report.MySqlOrders);
        Assert.Equal(("pending_payment", (long)history.DistinctOrderIds, 300L), (pending.Status, pending.Orders, pending.Units));
        Assert.Equal((300L, 300L, true), (report.RedisEquation.Left, report.RedisEquation.Right, report.RedisEquation.Holds));
        Assert.Equal((0L, 0L, true), (report.InventoryEquation.Left, report.InventoryEquation.Right, report.InventoryEquation.Holds));
        Assert.Equal(0, report.MissingInMySql.Count);
        Assert.Equal(0, report.UnknownToRedis.Count);
        Assert.Equal(0, report.PendingInPipeline.Count);
        Assert.Equal(0, report.Messages.DeadLettersForSku);
        Assert.Equal(0, report.Messages.CheckMaxForSku);
        Assert.Equal(0, report.Messages.HalfMessagesForSku);
        Assert.Null(report.Repair);
    }

    [Fact]
    public async Task An_order_lost_on_the_way_to_MySQL_is_reported_missing_and_repair_brings_it_back_once()
    {
        var sale = await fixture.CreateSaleAsync("rec-lost", stock: 100, buckets: 2, perUserLimit: 1);
        var history = await fixture.BuyOutAsync(sale, users: 100, requests: 100);
        Assert.Equal(100, history.AcknowledgedUnits);
        Assert.False((await SettledAsync(sale.Sku)).Drift);

        // Undo the order's write in MySQL as if it never happened, and put its log entry back in Redis as if the
        // bridge had never forwarded it: exactly the state of a deduction the pipeline lost.
        var order = history.Orders.First();
        var committedAt = await LoseOrderInMySqlAsync(sale.Sku, order.OrderId, order.Quantity);
        var db = fixture.Redis.GetDatabase();
        await db.StreamAddAsync(RedisKeys.Log(sale.Sku, order.Bucket),
        [
            new NameValueEntry("o", order.OrderId),
            new NameValueEntry("u", order.UserId),
            new NameValueEntry("r", order.RequestId),
            new NameValueEntry("q", order.Quantity),
            new NameValueEntry("b", order.Bucket),
            // Older than the grace period, so it is lost, not in flight.
            new NameValueEntry("t", committedAt - 60_000),
        ]);

        var found = await Verifier.VerifyAsync(sale.Sku, repair: false);
        Assert.NotNull(found);
        Assert.True(found.Drift);
        Assert.Equal(1, found.MissingInMySql.Count);
        Assert.Equal([order.OrderId], found.MissingInMySql.OrderIds);
        Assert.Equal(0, found.UnknownToRedis.Count);
        Assert.True(found.AtRest);
        Assert.False(found.RedisEquation.Holds);
        Assert.Equal(100 - order.Quantity, found.RedisEquation.Left);
        Assert.Contains(found.Problems, p => p.Contains("missing in MySQL", StringComparison.Ordinal));
        Assert.Null(found.Repair);

        var repaired = await Verifier.VerifyAsync(sale.Sku, repair: true);
        // Trimmed counts the sale's forwarded entries the bridge had not removed (if any); the lost order is not one.
        Assert.Equal(1, repaired!.Repair!.Republished);
        await WaitUntilAsync(async () => await ScalarAsync("SELECT COUNT(*) FROM orders WHERE order_id = @id", order.OrderId) == 1, TimeSpan.FromSeconds(15));

        // The order is stored again; a second repair publishes nothing and trims every entry whose order is stored
        // (the re-added one, and any the bridge left behind).
        var second = await Verifier.VerifyAsync(sale.Sku, repair: true);
        Assert.Equal(0, second!.MissingInMySql.Count);
        Assert.Equal(0, second.Repair!.Republished);
        Assert.True(second.Repair.Trimmed >= 1, $"trimmed {second.Repair.Trimmed}");
        Assert.Equal(0, second.UnknownToRedis.Count);
        var logLengths = await Task.WhenAll(Enumerable.Range(0, 2).Select(b => db.StreamLengthAsync(RedisKeys.Log(sale.Sku, b))));
        Assert.All(logLengths, length => Assert.Equal(0, length));

        var clean = await SettledAsync(sale.Sku);
        Assert.False(clean.Drift, string.Join("; ", clean.Problems));
        Assert.Equal(0L, clean.AvailableStock);
        Assert.Equal(100, clean.MySqlLiveUnits);
        Assert.Equal(0, clean.InventoryLogRows);

        // Nothing left to do: a further repair changes nothing.
        var third = await Verifier.VerifyAsync(sale.Sku, repair: true);
        Assert.Equal(new ReconciliationRepair(0, 0), third!.Repair);
        Assert.False(third.Drift);
        Assert.Equal(history.DistinctOrderIds, await ScalarAsync("SELECT COUNT(*) FROM orders WHERE sku = @id", sale.Sku));
        Assert.Equal(0, await ScalarAsync("SELECT available_stock FROM inventory WHERE sku = @id", sale.Sku));
    }

    [Fact]
    public async Task A_phantom_order_in_MySQL_is_reported_unknown_to_Redis()
    {
        var sale = await fixture.CreateSaleAsync("rec-phantom", stock: 20, buckets: 1, perUserLimit: 1);
        await fixture.BuyOutAsync(sale, users: 20, requests: 20);
        Assert.False((await SettledAsync(sale.Sku)).Drift);

        var phantom = "phantom-" + Guid.NewGuid().ToString("N")[..12];
        await using (var connection = new MySqlConnection(TestStack.MySql))
        {
            await connection.OpenAsync();
            await using var insert = new MySqlCommand(
                "INSERT INTO orders (order_id, request_id, sku, user_id, quantity, bucket, status, commit_batch, committed_at_ms) " +
                "VALUES (@id, 'r-phantom', @sku, 'u-phantom', 1, 0, 'paid', @batch, 0)", connection);
            insert.Parameters.AddWithValue("@id", phantom);
            insert.Parameters.AddWithValue("@sku", sale.Sku);
            insert.Parameters.AddWithValue("@batch", Guid.NewGuid().ToString("N"));
            Assert.Equal(1, await insert.ExecuteNonQueryAsync());
        }

        var report = await Verifier.VerifyAsync(sale.Sku, repair: false);
        Assert.NotNull(report);
        Assert.True(report.Drift);
        Assert.Equal(1, report.UnknownToRedis.Count);
        Assert.Equal([phantom], report.UnknownToRedis.OrderIds);
        Assert.Equal(0, report.MissingInMySql.Count);
        Assert.Equal((21L, 20L, false), (report.RedisEquation.Left, report.RedisEquation.Right, report.RedisEquation.Holds));
        Assert.Contains(report.Problems, p => p.Contains("unknown to Redis", StringComparison.Ordinal));

        // Repair never invents or removes orders MySQL holds: nothing to publish, the phantom stays reported, and
        // once the forwarded entries are trimmed a further repair does nothing at all.
        var after = await Verifier.VerifyAsync(sale.Sku, repair: true);
        Assert.Equal(0, after!.Repair!.Republished);
        Assert.True(after.Drift);
        var again = await Verifier.VerifyAsync(sale.Sku, repair: true);
        Assert.Equal(new ReconciliationRepair(0, 0), again!.Repair);
        Assert.Equal([phantom], again.UnknownToRedis.OrderIds);
    }

    [Fact]
    public async Task Verify_of_an_unknown_sale_is_null()
    {
        Assert.Null(await Verifier.VerifyAsync(ClusterFixture.NewSku("rec-none"), repair: false));
    }

    [Fact]
    public async Task The_verify_endpoint_needs_the_admin_token_and_answers_the_report()
    {
        var sale = await fixture.CreateSaleAsync("rec-http", stock: 10, buckets: 2, perUserLimit: 1);
        var path = $"/api/admin/verify/{sale.Sku}";

        var (status, body) = await GetAsync(path, token: null);
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Equal("unauthorized", body.GetProperty("code").GetString());
        (status, body) = await GetAsync(path, token: "not-the-admin-token-at-all");
        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Equal("forbidden", body.GetProperty("code").GetString());
        (status, _) = await GetAsync("/api/admin/sales", token: null);
        Assert.Equal(HttpStatusCode.Unauthorized, status);

        (status, body) = await GetAsync(path + "?repair=false", TestStack.AdminToken);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(sale.Sku, body.GetProperty("sku").GetString());
        Assert.Equal(10, body.GetProperty("redisRemaining").GetInt64());
        Assert.True(body.GetProperty("redisEquation").GetProperty("holds").GetBoolean());
        Assert.False(body.GetProperty("drift").GetBoolean());

        (status, body) = await GetAsync(path + "?repair=maybe", TestStack.AdminToken);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_request", body.GetProperty("code").GetString());

        (status, body) = await GetAsync($"/api/admin/verify/{ClusterFixture.NewSku("rec-none")}", TestStack.AdminToken);
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Equal("unknown_sale", body.GetProperty("code").GetString());

        (status, body) = await GetAsync("/api/admin/sales", TestStack.AdminToken);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains(sale.Sku, body.GetProperty("skus").EnumerateArray().Select(e => e.GetString()));
    }

    [Fact]
    public async Task The_verify_command_exits_0_without_drift_1_with_drift_and_refuses_unknown_options()
    {
        var clean = await fixture.CreateSaleAsync("rec-cli", stock: 5, buckets: 1, perUserLimit: 1);
        var drifted = await fixture.CreateSaleAsync("rec-cli-bad", stock: 5, buckets: 1, perUserLimit: 1);
        await using (var connection = new MySqlConnection(TestStack.MySql))
        {
            await connection.OpenAsync();
            await using var insert = new MySqlCommand(
                "INSERT INTO orders (order_id, request_id, sku, user_id, quantity, bucket, status, commit_batch, committed_at_ms) " +
                "VALUES (@id, 'r', @sku, 'u', 1, 0, 'pending_payment', @batch, 0)", connection);
            insert.Parameters.AddWithValue("@id", "phantom-" + Guid.NewGuid().ToString("N")[..12]);
            insert.Parameters.AddWithValue("@sku", drifted.Sku);
            insert.Parameters.AddWithValue("@batch", Guid.NewGuid().ToString("N"));
            await insert.ExecuteNonQueryAsync();
        }

        using var client = new OrleansFlashSale.Cli.GatewayClient(fixture.Http.BaseAddress!.ToString(), TestStack.AdminToken);
        Assert.Equal(0, await OrleansFlashSale.Cli.VerifyCommand.RunAsync([clean.Sku], client));
        Assert.Equal(1, await OrleansFlashSale.Cli.VerifyCommand.RunAsync([clean.Sku, drifted.Sku], client));
        Assert.Equal(1, await OrleansFlashSale.Cli.VerifyCommand.RunAsync([ClusterFixture.NewSku("rec-none")], client));
        await Assert.ThrowsAsync<OrleansFlashSale.Cli.UsageException>(() =>
            OrleansFlashSale.Cli.VerifyCommand.RunAsync([clean.Sku, "--fix"], client));
        using var stranger = new OrleansFlashSale.Cli.GatewayClient(fixture.Http.BaseAddress!.ToString(), "not-the-admin-token-at-all");
        Assert.Equal(1, await OrleansFlashSale.Cli.VerifyCommand.RunAsync([clean.Sku], stranger));
    }

    private async Task<(HttpStatusCode Status, JsonElement Body)> GetAsync(string path, string? token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        using var response = await fixture.Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, string.IsNullOrEmpty(text) ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    /// <summary>Verifies until the sale is at rest without drift, or the deadline passes; returns the last report.</summary>
    private async Task<ReconciliationReport> SettledAsync(string sku)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var report = await Verifier.VerifyAsync(sku, repair: false);
            Assert.NotNull(report);
            if ((report.AtRest && !report.Drift) || DateTime.UtcNow > deadline)
            {
                return report;
            }

            await Task.Delay(200);
        }
    }

    /// <summary>Removes the order, its log row and its units from MySQL in one transaction; returns its committed_at_ms.</summary>
    private static async Task<long> LoseOrderInMySqlAsync(string sku, string orderId, int quantity)
    {
        await using var connection = new MySqlConnection(TestStack.MySql);
        await connection.OpenAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        long committedAt;
        await using (var read = new MySqlCommand("SELECT committed_at_ms FROM orders WHERE order_id = @id", connection, transaction))
        {
            read.Parameters.AddWithValue("@id", orderId);
            committedAt = Convert.ToInt64(await read.ExecuteScalarAsync());
        }

        foreach (var sql in new[]
        {
            "DELETE FROM orders WHERE order_id = @id",
            "UPDATE inventory SET available_stock = available_stock + @q WHERE sku = @sku",
        })
        {
            await using var command = new MySqlCommand(sql, connection, transaction);
            command.Parameters.AddWithValue("@id", orderId);
            command.Parameters.AddWithValue("@q", quantity);
            command.Parameters.AddWithValue("@sku", sku);
            Assert.Equal(1, await command.ExecuteNonQueryAsync());
        }

        await transaction.CommitAsync();
        return committedAt;
    }

    private static Task<long> ScalarAsync(string sql, string id) => TestDb.ScalarAsync(sql, ("@id", id));

    private static Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan within) => TestDb.WaitUntilAsync(condition, within);
}
