using MySqlConnector;

namespace OrleansFlashSale.Tests;

/// <summary>Direct reads of the real MariaDB and polling with a deadline, shared by the suites that check MySQL.</summary>
public static class TestDb
{
    public static async Task<long> ScalarAsync(string sql, params (string Name, object? Value)[] parameters)
    {
        await using var connection = new MySqlConnection(TestStack.MySql);
        await connection.OpenAsync();
        await using var command = new MySqlCommand(sql, connection);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        var result = await command.ExecuteScalarAsync();
        return result is null or DBNull ? 0 : Convert.ToInt64(result);
    }

    /// <summary>MySQL's orders of a SKU: order id → quantity.</summary>
    public static async Task<Dictionary<string, int>> OrdersAsync(string sku)
    {
        var orders = new Dictionary<string, int>();
        await using var connection = new MySqlConnection(TestStack.MySql);
        await connection.OpenAsync();
        await using var command = new MySqlCommand("SELECT order_id, quantity FROM orders WHERE sku = @sku", connection);
        command.Parameters.AddWithValue("@sku", sku);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            orders[reader.GetString(0)] = reader.GetInt32(1);
        }

        return orders;
    }

    /// <summary>Polls until the condition holds; fails the test at the deadline.</summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"condition not reached within {within}");
            await Task.Delay(100);
        }
    }
}
