using Microsoft.Extensions.Options;
using MySqlConnector;

namespace OrleansFlashSale.Persistence;

/// <summary>An order row as stored in MySQL.</summary>
public sealed record StoredOrder(
    string OrderId,
    string RequestId,
    string Sku,
    string UserId,
    int Quantity,
    int Bucket,
    string Status,
    long CommittedAtMs,
    int? ReturnBucket,
    bool StockReturned);

/// <summary>
/// Status changes after an order reached MySQL: pay, cancel, expire. Every change is one conditional UPDATE
/// (<c>WHERE status = 'pending_payment'</c>), so concurrent pay and cancel of one order cannot both win, and a
/// retried cancel changes nothing the second time. Giving units back to MySQL happens in the same transaction as
/// the status change, guarded by the log's unique (order_id, reason).
/// </summary>
public sealed class OrderLifecycleStore(IOptions<OrderStoreOptions> options) : IOrderLifecycleStore
{
    private const string Columns =
        "order_id, request_id, sku, user_id, quantity, bucket, status, committed_at_ms, return_bucket, stock_returned";

    /// <summary>
    /// One sale's due orders after a position in commit order (parameters @sku, @cutoff, @afterMs, @afterId, @limit);
    /// its plan is checked by a test.
    /// </summary>
    /// <remarks>
    /// The index is forced: when both ranges look empty the optimizer may take (status, committed_at_ms) instead,
    /// which reads the due orders of every sale and keeps this one's (a large orders table made the difference plain).
    /// </remarks>
    internal const string ExpiredOfSaleSql =
        $"SELECT {Columns} FROM orders FORCE INDEX (ix_orders_sku_status_committed) WHERE sku = @sku AND status = 'pending_payment' AND committed_at_ms < @cutoff " +
        "AND (committed_at_ms > @afterMs OR (committed_at_ms = @afterMs AND order_id > @afterId)) " +
        "ORDER BY committed_at_ms, order_id LIMIT @limit";

    public async Task<StoredOrder?> GetAsync(string orderId)
    {
        await using var connection = await OpenAsync();
        await using var command = new MySqlCommand($"SELECT {Columns} FROM orders WHERE order_id = @id", connection);
        command.Parameters.AddWithValue("@id", orderId);
        var rows = await ReadAsync(command);
        return rows.Count == 0 ? null : rows[0];
    }

    public async Task<bool> MarkPaidAsync(string orderId, string userId)
    {
        await using var connection = await OpenAsync();
        await using var command = new MySqlCommand(
            "UPDATE orders SET status = 'paid' WHERE order_id = @id AND user_id = @user AND status = 'pending_payment'", connection);
        command.Parameters.AddWithValue("@id", orderId);
        command.Parameters.AddWithValue("@user", userId);
        return await command.ExecuteNonQueryAsync() == 1;
    }

    /// <summary>
    /// Cancels or expires a pending order and gives its units back to <c>inventory</c>, in one transaction.
    /// False when the order was no longer pending (paid, or released already).
    /// </summary>
    public async Task<bool> ReleaseAsync(StoredOrder order, string newStatus, int returnBucket)
    {
        await using var connection = await OpenAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await using (var update = new MySqlCommand(
            "UPDATE orders SET status = @status, return_bucket = @bucket WHERE order_id = @id AND status = 'pending_payment'",
            connection, transaction))
        {
            update.Parameters.AddWithValue("@status", newStatus);
            update.Parameters.AddWithValue("@bucket", returnBucket);
            update.Parameters.AddWithValue("@id", order.OrderId);
            if (await update.ExecuteNonQueryAsync() != 1)
            {
                await transaction.RollbackAsync();
                return false;
            }
        }

        await using (var log = new MySqlCommand(
            "INSERT IGNORE INTO inventory_log (sku, order_id, delta, reason) VALUES (@sku, @id, @qty, 'return')",
            connection, transaction))
        {
            log.Parameters.AddWithValue("@sku", order.Sku);
            log.Parameters.AddWithValue("@id", order.OrderId);
            log.Parameters.AddWithValue("@qty", order.Quantity);
            if (await log.ExecuteNonQueryAsync() == 1)
            {
                await using var stock = new MySqlCommand(
                    "UPDATE inventory SET available_stock = available_stock + @qty WHERE sku = @sku", connection, transaction);
                stock.Parameters.AddWithValue("@qty", order.Quantity);
                stock.Parameters.AddWithValue("@sku", order.Sku);
                await stock.ExecuteNonQueryAsync();
            }
        }

        await transaction.CommitAsync();
        return true;
    }

    public async Task MarkReturnedAsync(string orderId)
    {
        await using var connection = await OpenAsync();
        await using var command = new MySqlCommand("UPDATE orders SET stock_returned = 1 WHERE order_id = @id", connection);
        command.Parameters.AddWithValue("@id", orderId);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>Pending orders older than their sale's payment timeout, oldest first.</summary>
    /// <remarks>
    /// Sale by sale: the cut-off depends on each sale's timeout, and one query joining the sales could not use an index
    /// range for it, so it read (and sorted) every pending order of every sale on every sweep. Per sale, the index
    /// (sku, status, committed_at_ms) of V005 reads exactly the due orders.
    /// </remarks>
    /// <summary>
    /// Due orders of one sale or all, oldest commit first (order id breaks ties: one Redis batch shares its
    /// millisecond), starting after (<paramref name="afterMs"/>, <paramref name="afterId"/>); -1 and "" start at the
    /// beginning.
    /// </summary>
    public async Task<IReadOnlyList<StoredOrder>> FindExpiredAsync(string? sku, long nowMs, int limit, long afterMs = -1, string afterId = "")
    {
        await using var connection = await OpenAsync();
        var cutoffs = new List<(string Sku, long CutoffMs)>();
        await using (var sales = new MySqlCommand(
            "SELECT sku, payment_timeout_seconds FROM inventory WHERE @sku IS NULL OR sku = @sku", connection))
        {
            sales.Parameters.AddWithValue("@sku", sku);
            await using var reader = await sales.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                cutoffs.Add((reader.GetString(0), nowMs - reader.GetInt64(1) * 1000));
            }
        }

        var due = new List<StoredOrder>();
        await using var command = new MySqlCommand(ExpiredOfSaleSql, connection);
        var skuParameter = command.Parameters.Add("@sku", MySqlDbType.VarChar);
        var cutoffParameter = command.Parameters.Add("@cutoff", MySqlDbType.Int64);
        command.Parameters.AddWithValue("@limit", limit);
        command.Parameters.AddWithValue("@afterMs", afterMs);
        command.Parameters.AddWithValue("@afterId", afterId);
        foreach (var (saleSku, cutoffMs) in cutoffs)
        {
            skuParameter.Value = saleSku;
            cutoffParameter.Value = cutoffMs;
            due.AddRange(await ReadAsync(command));
        }

        return due.OrderBy(o => o.CommittedAtMs).ThenBy(o => o.OrderId, StringComparer.Ordinal).Take(limit).ToList();
    }

    /// <summary>Released orders whose units have not reached Redis yet (a crash or a Redis fault in between).</summary>
    public async Task<IReadOnlyList<StoredOrder>> FindUnreturnedAsync(string? sku, TimeSpan olderThan, int limit)
    {
        await using var connection = await OpenAsync();
        await using var command = new MySqlCommand(
            $"SELECT {Columns} FROM orders WHERE status IN ('cancelled', 'expired') AND stock_returned = 0 " +
            "AND updated_at < NOW(6) - INTERVAL @age MICROSECOND AND (@sku IS NULL OR sku = @sku) LIMIT @limit", connection);
        command.Parameters.AddWithValue("@sku", sku);
        command.Parameters.AddWithValue("@age", (long)olderThan.TotalMicroseconds);
        command.Parameters.AddWithValue("@limit", limit);
        return await ReadAsync(command);
    }

    /// <summary>Every sale's SKU (its inventory row), in SKU order.</summary>
    public async Task<IReadOnlyList<string>> ListSalesAsync()
    {
        await using var connection = await OpenAsync();
        await using var command = new MySqlCommand("SELECT sku FROM inventory ORDER BY sku", connection);
        var skus = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            skus.Add(reader.GetString(0));
        }

        return skus;
    }

    public async Task SetPaymentTimeoutAsync(string sku, int seconds)
    {
        await using var connection = await OpenAsync();
        await using var command = new MySqlCommand("UPDATE inventory SET payment_timeout_seconds = @s WHERE sku = @sku", connection);
        command.Parameters.AddWithValue("@s", seconds);
        command.Parameters.AddWithValue("@sku", sku);
        await command.ExecuteNonQueryAsync();
    }

    private Task<MySqlConnection> OpenAsync() => MySqlTransactions.OpenAsync(options.Value.ConnectionString, CancellationToken.None);

    private static async Task<List<StoredOrder>> ReadAsync(MySqlCommand command)
    {
        var rows = new List<StoredOrder>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            rows.Add(new StoredOrder(
                reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetInt32(4),
                reader.GetInt32(5), reader.GetString(6), reader.GetInt64(7),
                reader.IsDBNull(8) ? null : reader.GetInt32(8), reader.GetInt32(9) != 0));
        }

        return rows;
    }
}
