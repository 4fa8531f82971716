using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using MySqlConnector;
using OrleansFlashSale.Persistence;

namespace OrleansFlashSale.Tests;

/// <summary>
/// Database-mode sales on the real services: stock only in MySQL's inventory row, every purchase deducted there by a
/// group transaction before the buyer hears back.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class DatabaseModeTests(ClusterFixture fixture)
{
    private async Task<SaleDefinition> CreateDatabaseSaleAsync(string prefix, long stock, int perUserLimit)
    {
        var sale = new SaleDefinition(ClusterFixture.NewSku(prefix), stock, 1, perUserLimit, null, null,
            SaleRules.DefaultPaymentTimeoutSeconds, 16, SaleModes.Database);
        var created = await fixture.Client.Product(sale.Sku).CreateAsync(sale);
        Assert.Equal(CreateSaleOutcome.Created, created.Outcome);
        return sale;
    }

    private long DeductorTransactions() =>
        fixture.Cluster.Silos.Sum(s => s.ServiceProvider.GetRequiredService<DatabaseDeductor>().Transactions);

    [Fact]
    public async Task A_database_sale_is_bought_out_with_exactly_the_stock_in_few_transactions()
    {
        var sale = await CreateDatabaseSaleAsync("db-buyout", stock: 300, perUserLimit: 2);
        var transactionsBefore = DeductorTransactions();
        var history = new SaleHistory();
        await Task.WhenAll(Enumerable.Range(0, 1000).Select(async j =>
        {
            var user = $"u{j % 400}";
            history.Record(user, $"r{j}", await fixture.BuyAsync(sale, user, $"r{j}"));
        }));
        var transactions = DeductorTransactions() - transactionsBefore;

        Assert.Equal(0, history.Count(PurchaseOutcome.Unavailable));
        Assert.Equal(300, history.AcknowledgedUnits);
        Assert.Equal(0, history.UsersAbove(2));
        Assert.All(history.Orders, o => Assert.Equal(-1, o.Bucket));

        // Synchronous: MySQL holds exactly the acknowledged orders the moment the last buyer is answered.
        var stored = await OrdersAsync(sale.Sku);
        Assert.Equal(history.Orders.Select(o => o.OrderId).Order(), stored.Keys.Order());
        Assert.All(history.Orders, o => Assert.Equal((o.Quantity, -1, "pending_payment"), stored[o.OrderId]));
        Assert.Equal(0L, await ScalarAsync("SELECT available_stock FROM inventory WHERE sku = @p", sale.Sku));
        Assert.Equal(300L, await ScalarAsync("SELECT SUM(quantity) FROM orders WHERE sku = @p", sale.Sku));
        Assert.Equal(0L, await ScalarAsync("SELECT COUNT(*) FROM inventory_log WHERE sku = @p", sale.Sku));
        Assert.True(transactions is > 0 and < 100, $"{transactions} transactions for 1000 purchases: groups should be far fewer than the 300 units");

        // No Redis stock was ever set up, and the status reads MySQL.
        Assert.Equal(0, (await fixture.RedisStockAsync(sale.Sku, 1)).Sum());
        var status = await fixture.Client.Product(sale.Sku).GetStatusAsync(refresh: true);
        Assert.Equal((0L, 300L, SaleStates.SoldOut, 0), (status!.Remaining, status.Sold, status.State, status.Buckets.Count));

        // Replays of every acknowledged request get their original order and take nothing more.
        var acknowledged = history.Orders.ToArray();
        await Task.WhenAll(acknowledged.Select(async o =>
            history.Record(o.UserId, o.RequestId, await fixture.BuyAsync(sale, o.UserId, o.RequestId))));
        Assert.Equal(0, history.ReplayMismatches);
        Assert.Equal(acknowledged.Length, history.Count(PurchaseOutcome.Replayed));
        Assert.Equal(300, history.AcknowledgedUnits);
        Assert.Equal(300L, await ScalarAsync("SELECT COUNT(*) FROM orders WHERE sku = @p", sale.Sku));
        Assert.Equal(0L, await ScalarAsync("SELECT available_stock FROM inventory WHERE sku = @p", sale.Sku));
    }

    [Fact]
    public async Task A_database_sale_is_created_over_HTTP_and_an_unknown_mode_is_refused()
    {
        var sku = ClusterFixture.NewSku("db-http");
        var (status, body) = await PostSaleAsync($$"""{"sku":"{{sku}}","stock":5,"buckets":2,"perUserLimit":1,"mode":"database"}""");
        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal("database", body.GetProperty("mode").GetString());
        Assert.Equal(SaleModes.Database, (await fixture.Client.Product(sku).GetDefinitionAsync())!.Mode);

        var sale = await fixture.Http.GetFromJsonAsync<JsonElement>($"/api/sales/{sku}");
        Assert.Equal(5, sale.GetProperty("remaining").GetInt64());
        Assert.Equal(0, sale.GetProperty("buckets").GetArrayLength());

        var purchase = await fixture.Http.PostAsJsonAsync($"/api/sales/{sku}/purchases", new { userId = "h1", quantity = 1, requestId = "r1" });
        Assert.True(purchase.IsSuccessStatusCode, $"purchase answered {(int)purchase.StatusCode}");
        Assert.Equal(4L, await ScalarAsync("SELECT available_stock FROM inventory WHERE sku = @p", sku));

        var other = ClusterFixture.NewSku("db-http-bad");
        var (badStatus, badBody) = await PostSaleAsync($$"""{"sku":"{{other}}","stock":5,"buckets":1,"perUserLimit":1,"mode":"memory"}""");
        Assert.Equal(HttpStatusCode.BadRequest, badStatus);
        Assert.Equal("invalid_request", badBody.GetProperty("code").GetString());
        Assert.Null(await fixture.Client.Product(other).GetDefinitionAsync());
    }

    [Fact]
    public async Task Cancelling_a_database_order_returns_the_unit_to_MySQL_once_and_it_sells_again()
    {
        var sale = await CreateDatabaseSaleAsync("db-cancel", stock: 2, perUserLimit: 2);
        var first = await fixture.BuyAsync(sale, "canceller", "r1");
        Assert.Equal(PurchaseOutcome.Created, first.Outcome);
        var order = first.Order!;
        Assert.Equal(PurchaseOutcome.Created, (await fixture.BuyAsync(sale, "other", "r1")).Outcome);
        Assert.Equal(PurchaseOutcome.SoldOut, (await fixture.BuyAsync(sale, "late", "r1")).Outcome);

        // Already in MySQL when the buyer was answered: no "reserved" phase.
        var view = await fixture.Http.GetFromJsonAsync<JsonElement>($"/api/orders/{order.OrderId}");
        Assert.Equal("pending_payment", view.GetProperty("status").GetString());

        var cancelled = await fixture.Http.PostAsJsonAsync($"/api/orders/{order.OrderId}/cancel", new { userId = "canceller" });
        Assert.Equal(HttpStatusCode.OK, cancelled.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await fixture.Http.PostAsJsonAsync($"/api/orders/{order.OrderId}/cancel", new { userId = "canceller" })).StatusCode);

        Assert.Equal(1L, await ScalarAsync("SELECT available_stock FROM inventory WHERE sku = @p", sale.Sku));
        Assert.Equal(1L, await ScalarAsync("SELECT COUNT(*) FROM inventory_log WHERE order_id = @p AND reason = 'return'", order.OrderId));
        Assert.Equal(1L, await ScalarAsync("SELECT stock_returned FROM orders WHERE order_id = @p", order.OrderId));
        Assert.Equal(0, (await fixture.RedisStockAsync(sale.Sku, 1)).Sum());

        // No cache to wait for: the next buyer gets the returned unit at once, and only that one.
        var again = await fixture.BuyAsync(sale, "late", "r2");
        Assert.Equal(PurchaseOutcome.Created, again.Outcome);
        Assert.Equal(PurchaseOutcome.SoldOut, (await fixture.BuyAsync(sale, "later", "r1")).Outcome);
        Assert.Equal(0L, await ScalarAsync("SELECT available_stock FROM inventory WHERE sku = @p", sale.Sku));
        Assert.Equal(2L, await ScalarAsync("SELECT COUNT(*) FROM orders WHERE sku = @p AND status = 'pending_payment'", sale.Sku));
    }

    private async Task<(HttpStatusCode Status, JsonElement Body)> PostSaleAsync(string json)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/sales") { Content = new StringContent(json, Encoding.UTF8) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", TestStack.AdminToken);
        var response = await fixture.Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    private static async Task<Dictionary<string, (int Quantity, int Bucket, string Status)>> OrdersAsync(string sku)
    {
        var orders = new Dictionary<string, (int, int, string)>();
        await using var connection = new MySqlConnection(TestStack.MySql);
        await connection.OpenAsync();
        await using var command = new MySqlCommand("SELECT order_id, quantity, bucket, status FROM orders WHERE sku = @sku", connection);
        command.Parameters.AddWithValue("@sku", sku);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            orders[reader.GetString(0)] = (reader.GetInt32(1), reader.GetInt32(2), reader.GetString(3));
        }

        return orders;
    }

    private static async Task<long> ScalarAsync(string sql, string parameter)
    {
        await using var connection = new MySqlConnection(TestStack.MySql);
        await connection.OpenAsync();
        await using var command = new MySqlCommand(sql, connection);
        command.Parameters.AddWithValue("@p", parameter);
        var value = await command.ExecuteScalarAsync();
        return value is null or DBNull ? 0 : Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task Verify_of_a_database_sale_balances_on_MySQL_alone()
    {
        var sale = new SaleDefinition(ClusterFixture.NewSku("db-verify"), 50, 1, 1, null, null,
            SaleRules.DefaultPaymentTimeoutSeconds, 4, SaleModes.Database);
        Assert.Equal(CreateSaleOutcome.Created, (await fixture.Client.Product(sale.Sku).CreateAsync(sale)).Outcome);
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal(PurchaseOutcome.Created, (await fixture.BuyAsync(sale, $"v{i}", "r")).Outcome);
        }

        await fixture.AssertNoDriftAsync(sale.Sku);
        var report = (await fixture.Client.GetGrain<IReconciliationGrain>(0).VerifyAsync(sale.Sku, repair: false))!;
        Assert.Equal(0L, report.UnknownToRedis.Count);
    }
}
