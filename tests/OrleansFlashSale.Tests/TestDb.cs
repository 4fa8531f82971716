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
