using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using MySqlConnector;

namespace OrleansFlashSale.Tests;

/// <summary>Order status, pay, cancel and expiry, with the stock return checked in Redis and MySQL.</summary>
[Collection(ClusterCollection.Name)]
public sealed class OrderLifecycleTests(ClusterFixture fixture)
{
    private async Task<OrderInfo> BuyPersistedAsync(SaleDefinition sale, string user, string request)
    {
        var result = await fixture.BuyAsync(sale, user, request);
        Assert.Equal(PurchaseOutcome.Created, result.Outcome);
        await WaitForStatusAsync(result.Order!.OrderId, "pending_payment");
        return result.Order;
    }

    private async Task<JsonElement> WaitForStatusAsync(string orderId, string status)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            var response = await fixture.Http.GetAsync($"/api/orders/{orderId}");
            if (response.StatusCode == HttpStatusCode.OK)
            {
                var body = await response.Content.ReadFromJsonAsync<JsonElement>();
                if (body.GetProperty("status").GetString() == status)
                {
                    return body;
                }

                // Before MySQL has it, the order shows as reserved: never anything else.
                Assert.Equal("reserved", body.GetProperty("status").GetString());
            }

            Assert.True(DateTime.UtcNow < deadline, $"order {orderId} did not reach {status} (last HTTP {(int)response.StatusCode})");
            await Task.Delay(50);
        }
    }

    private async Task<(HttpStatusCode Status, string? Code, JsonElement Body)> ActAsync(string orderId, string action, string user)
    {
        var response = await fixture.Http.PostAsJsonAsync($"/api/orders/{orderId}/{action}", new { userId = user });
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        return (response.StatusCode, body.TryGetProperty("code", out var code) ? code.GetString() : null, body);
    }

    [Fact]
    public async Task An_order_is_reserved_then_pending_payment_then_paid_once()
    {
        var sale = await fixture.CreateSaleAsync("life-pay", stock: 10, buckets: 2, perUserLimit: 2);
        var order = await BuyPersistedAsync(sale, "payer", "r1");

        Assert.Equal((HttpStatusCode.Forbidden, "not_your_order"), await CodeAsync(order.OrderId, "pay", "someone-else"));
        var paid = await ActAsync(order.OrderId, "pay", "payer");
        Assert.Equal(HttpStatusCode.OK, paid.Status);
        Assert.Equal("paid", paid.Body.GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.OK, (await ActAsync(order.OrderId, "pay", "payer")).Status);
        Assert.Equal((HttpStatusCode.Conflict, "order_paid"), await CodeAsync(order.OrderId, "cancel", "payer"));
        Assert.Equal((HttpStatusCode.NotFound, "unknown_order"), await CodeAsync("no-such-order", "pay", "payer"));
        await WaitForStatusAsync(order.OrderId, "paid");
    }

    [Fact]
    public async Task Cancelling_returns_the_units_exactly_once_and_buyers_can_take_them_again()
    {
        var sale = await fixture.CreateSaleAsync("life-cancel", stock: 2, buckets: 1, perUserLimit: 2);
        var order = await BuyPersistedAsync(sale, "canceller", "r1");
        Assert.Equal(PurchaseOutcome.Created, (await fixture.BuyAsync(sale, "other", "r1")).Outcome);
        Assert.Equal(PurchaseOutcome.SoldOut, (await fixture.BuyAsync(sale, "late", "r1")).Outcome);

        var cancelled = await ActAsync(order.OrderId, "cancel", "canceller");
        Assert.Equal(HttpStatusCode.OK, cancelled.Status);
        Assert.Equal("cancelled", cancelled.Body.GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.OK, (await ActAsync(order.OrderId, "cancel", "canceller")).Status);
        Assert.Equal((HttpStatusCode.Conflict, "order_cancelled"), await CodeAsync(order.OrderId, "pay", "canceller"));

        Assert.Equal(1, (await fixture.RedisStockAsync(sale.Sku, 1)).Sum());
        Assert.Equal(1, await ScalarAsync("SELECT COUNT(*) FROM inventory_log WHERE order_id = @p AND reason = 'return'", order.OrderId));
        Assert.Equal(1, await ScalarAsync("SELECT stock_returned FROM orders WHERE order_id = @p", order.OrderId));

        // The sold-out view learns the unit is back: a new buyer gets it (within the routing cache's second).
        var deadline = DateTime.UtcNow.AddSeconds(10);
        PurchaseResult again;
        var attempt = 0;
        do
        {
            again = await fixture.BuyAsync(sale, "late", $"retry-{attempt++}");
            Assert.True(again.Outcome == PurchaseOutcome.Created || DateTime.UtcNow < deadline, "the returned unit was never sold again");
        }
        while (again.Outcome != PurchaseOutcome.Created && await Delay());
        Assert.Equal(0, (await fixture.RedisStockAsync(sale.Sku, 1)).Sum());
        await WaitForStatusAsync(again.Order!.OrderId, "pending_payment");
        Assert.Equal(0, await ScalarAsync("SELECT available_stock FROM inventory WHERE sku = @p", sale.Sku));
    }

    [Fact]
    public async Task Unpaid_orders_expire_after_the_payment_timeout_and_give_their_units_back()
    {
        // A week to pay (the longest allowed): other tests move the silos' clock by hours, never by a week.
        const int Timeout = SaleRules.MaxPaymentTimeoutSeconds;
        var sale = new SaleDefinition(ClusterFixture.NewSku("life-expire"), 3, 1, 3, null, null, Timeout, 4, SaleModes.Redis);
        Assert.Equal(CreateSaleOutcome.Created, (await fixture.Client.Product(sale.Sku).CreateAsync(sale)).Outcome);
        var unpaid = await BuyPersistedAsync(sale, "sleepy", "r1");
        var paid = await BuyPersistedAsync(sale, "prompt", "r1");
        Assert.Equal(HttpStatusCode.OK, (await ActAsync(paid.OrderId, "pay", "prompt")).Status);

        var orders = fixture.Client.GetGrain<IOrdersGrain>(0);
        await orders.ExpireDueAsync(sale.Sku, 500);
        Assert.Equal("pending_payment", (await orders.GetAsync(unpaid.OrderId))!.Status);

        // The silos' clock moves past the deadline (a week and a minute after the Redis commit).
        var past = DateTimeOffset.UtcNow.AddSeconds(Timeout + 60);
        fixture.Time.SetUtcNow(past > fixture.Time.GetUtcNow() ? past : fixture.Time.GetUtcNow().AddSeconds(Timeout + 60));
        await orders.ExpireDueAsync(sale.Sku, 500);

        Assert.Equal("expired", (await orders.GetAsync(unpaid.OrderId))!.Status);
        Assert.Equal("paid", (await orders.GetAsync(paid.OrderId))!.Status);
        Assert.Equal((HttpStatusCode.Conflict, "order_expired"), await CodeAsync(unpaid.OrderId, "pay", "sleepy"));
        Assert.Equal(2, (await fixture.RedisStockAsync(sale.Sku, 1)).Sum());
        Assert.Equal(2, await ScalarAsync("SELECT available_stock FROM inventory WHERE sku = @p", sale.Sku));

        // A second sweep finds nothing more to do: the return happened once.
        await orders.ExpireDueAsync(sale.Sku, 500);
        Assert.Equal(2, (await fixture.RedisStockAsync(sale.Sku, 1)).Sum());
        Assert.Equal(1, await ScalarAsync("SELECT COUNT(*) FROM inventory_log WHERE order_id = @p AND reason = 'return'", unpaid.OrderId));
    }

    [Fact]
    public async Task An_order_whose_return_MySQL_refuses_does_not_stop_the_orders_behind_it_from_expiring_even_filling_a_page()
    {
        // A minute to pay, and the clock moves two: the collection's clock only goes forward, and a test that moved it
        // a week would leave the week-long sale of the test above already due before its own move. Nothing sweeps this
        // sale before the drift below (the background sweep is off in tests), so its orders may fall due at any time.
        const int Timeout = 60;
        var sale = new SaleDefinition(ClusterFixture.NewSku("life-poison"), 4, 1, 3, null, null, Timeout, 4, SaleModes.Redis);
        Assert.Equal(CreateSaleOutcome.Created, (await fixture.Client.Product(sale.Sku).CreateAsync(sale)).Outcome);
        // The older order first: the sweep reaches it before the other.
        var big = await fixture.BuyAsync(sale, "big", "r1", quantity: 2);
        Assert.Equal(PurchaseOutcome.Created, big.Outcome);
        await WaitForStatusAsync(big.Order!.OrderId, "pending_payment");
        var small = await BuyPersistedAsync(sale, "small", "r1");
        Assert.Equal(1, await ScalarAsync("SELECT available_stock FROM inventory WHERE sku = @p", sale.Sku));

        // Drift: MySQL believes 2 more units are free than it should. Giving back the big order's 2 would make 5 of a
        // stock of 4, which ck_inventory_stock refuses; the small order's 1 still fits.
        await using (var connection = new MySqlConnection(TestStack.MySql))
        {
            await connection.OpenAsync();
            await using var drift = new MySqlCommand("UPDATE inventory SET available_stock = 3 WHERE sku = @p", connection);
            drift.Parameters.AddWithValue("@p", sale.Sku);
            Assert.Equal(1, await drift.ExecuteNonQueryAsync());
        }

        var past = DateTimeOffset.UtcNow.AddSeconds(Timeout + 60);
        fixture.Time.SetUtcNow(past > fixture.Time.GetUtcNow() ? past : fixture.Time.GetUtcNow().AddSeconds(Timeout + 60));
        var orders = fixture.Client.GetGrain<IOrdersGrain>(0);
        // A sweep of one order per page: the refused order fills the first page, and the sweep reads on past it.
        Assert.Equal(1, await orders.ExpireDueAsync(sale.Sku, 1));

        Assert.Equal("pending_payment", (await orders.GetAsync(big.Order.OrderId))!.Status);
        Assert.Equal("expired", (await orders.GetAsync(small.OrderId))!.Status);
        Assert.Equal(4, await ScalarAsync("SELECT available_stock FROM inventory WHERE sku = @p", sale.Sku));
        Assert.Equal(2, (await fixture.RedisStockAsync(sale.Sku, 1)).Sum());

        // It stays refused, and nothing else changes, sweep after sweep.
        Assert.Equal(0, await orders.ExpireDueAsync(sale.Sku, 500));
        Assert.Equal("pending_payment", (await orders.GetAsync(big.Order.OrderId))!.Status);
        Assert.Equal(4, await ScalarAsync("SELECT available_stock FROM inventory WHERE sku = @p", sale.Sku));
    }

    private async Task<(HttpStatusCode Status, string? Code)> CodeAsync(string orderId, string action, string user)
    {
        var (status, code, _) = await ActAsync(orderId, action, user);
        return (status, code);
    }

    private static async Task<bool> Delay()
    {
        await Task.Delay(100);
        return true;
    }

    private static Task<long> ScalarAsync(string sql, string parameter) => TestDb.ScalarAsync(sql, ("@p", parameter));
}
