using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using MySqlConnector;
using OrleansFlashSale.Grains;
using OrleansFlashSale.Persistence;
using Xunit.Abstractions;

namespace OrleansFlashSale.Tests;

/// <summary>The tests' own reads and waits on MariaDB.</summary>
public sealed partial class OrderStoreTests
{
    private static DeductionRecord Order(string sku, string name, int quantity, int bucket, long committedAtMs) =>
        new($"{name}-{Guid.NewGuid():N}", "req-" + name, sku, "user-" + name, quantity, bucket, committedAtMs);

    private static async Task SetAvailableAsync(string sku, long available)
    {
        await using var connection = new MySqlConnection(TestStack.MySql);
        await connection.OpenAsync();
        await using var command = new MySqlCommand("UPDATE inventory SET available_stock = @available WHERE sku = @sku", connection);
        command.Parameters.AddWithValue("@available", available);
        command.Parameters.AddWithValue("@sku", sku);
        Assert.Equal(1, await command.ExecuteNonQueryAsync());
    }

    /// <summary>
    /// Waits until another session runs a statement that names <paramref name="marker"/> (an order id it inserts),
    /// which the tests make wait for a row lock.
    /// </summary>
    private static async Task WaitForLockWaitAsync(string marker)
    {
        await using var connection = new MySqlConnection(TestStack.MySql);
        await connection.OpenAsync();
        for (var i = 0; i < 600; i++)
        {
            await using var command = new MySqlCommand(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' AND ID <> CONNECTION_ID() AND LOCATE(@marker, INFO) > 0",
                connection);
            command.Parameters.AddWithValue("@marker", marker);
            if (Convert.ToInt64(await command.ExecuteScalarAsync()) > 0)
            {
                return;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"No transaction naming {marker} waited for a lock within 30 s.");
    }

    /// <summary>The id of the session whose UPDATE of this SKU's inventory row waits for a lock.</summary>
    private static async Task<long> WaitForBlockedUpdateAsync(string sku, long? except)
    {
        await using var connection = new MySqlConnection(TestStack.MySql);
        await connection.OpenAsync();
        // Bounded polling for a state, never a timing assertion: generous, and the test fails if it never comes.
        for (var i = 0; i < 600; i++)
        {
            await using var command = new MySqlCommand(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'UPDATE inventory%' AND LOCATE(@sku, INFO) > 0 AND ID <> CONNECTION_ID() AND ID <> COALESCE(@except, -1) LIMIT 1",
                connection);
            command.Parameters.AddWithValue("@sku", sku);
            command.Parameters.AddWithValue("@except", except);
            if (await command.ExecuteScalarAsync() is { } id && Convert.ToInt64(id) != except)
            {
                return Convert.ToInt64(id);
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"No UPDATE of {sku} blocked within 30 s.");
    }

    /// <summary>(orders, units in orders, available stock, log rows) of one SKU; log rows stay 0 until a return.</summary>
    private static async Task<(long Orders, long Units, long Available, long Logged)> SnapshotAsync(string sku) =>
        (await ScalarAsync("SELECT COUNT(*) FROM orders WHERE sku = @sku", sku),
            await ScalarAsync("SELECT COALESCE(SUM(quantity), 0) FROM orders WHERE sku = @sku", sku),
            await AvailableAsync(sku),
            await ScalarAsync("SELECT COUNT(*) FROM inventory_log WHERE sku = @sku", sku));

    private static Task<long> AvailableAsync(string sku) => ScalarAsync("SELECT available_stock FROM inventory WHERE sku = @sku", sku);

    private static Task<long> ScalarAsync(string sql, string sku) => ScalarAsync(sql, ("@sku", sku));

    private static async Task<long> ScalarAsync(string sql, params (string Name, object Value)[] parameters)
    {
        await using var connection = new MySqlConnection(TestStack.MySql);
        await connection.OpenAsync();
        await using var command = new MySqlCommand(sql, connection);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        return Convert.ToInt64(await command.ExecuteScalarAsync());
    }
}
