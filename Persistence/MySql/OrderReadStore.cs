using System.Data;
using System.Globalization;
using Microsoft.Extensions.Options;
using MySqlConnector;

namespace OrleansFlashSale.Persistence;

/// <summary>What a proof of an order in Redis is keyed by: its bucket, user and request.</summary>
public sealed record OrderProofKey(int Bucket, string UserId, string RequestId);

/// <summary>One sale as MySQL holds it, read in one consistent snapshot.</summary>
/// <param name="ByStatus">Orders and units per status, in status order.</param>
/// <param name="Available">The inventory row's <c>available_stock</c>; null without a row.</param>
/// <param name="LogRows">The sale's <c>inventory_log</c> rows.</param>
/// <param name="OrdersPerBucket">Orders of every status per bucket column.</param>
/// <param name="StoredLogOrders">The asked-for orders MySQL already holds.</param>
/// <param name="Orders">Every order of the sale by id; only read when asked for.</param>
public sealed record SaleRows(List<OrderStatusUnits> ByStatus, long? Available, long LogRows,
    Dictionary<int, long> OrdersPerBucket, HashSet<string> StoredLogOrders, Dictionary<string, OrderProofKey>? Orders);

/// <summary>Orders of a sale in MySQL and their units, every status.</summary>
public sealed record SkuTotals(long Orders, long Units);

/// <summary>One stored order's trip: when Redis committed it and how long until its row was written.</summary>
public sealed record OrderTrip(long CommittedAtMs, double LagMs);

/// <summary>
/// Reads of what MySQL holds of a sale: the reconciliation's snapshot (counts per bucket and status, the inventory row,
/// the log), and the totals and trips the bench checks its figures against.
/// </summary>
public sealed class OrderReadStore(IOptions<OrderStoreOptions> options) : IOrderReadStore
{
    // Order ids per "IN (...)" when asking MySQL which log entries it already stores.
    private const int StoredLookupChunk = 1000;

    /// <summary>
    /// Counts per bucket and status, the inventory row, which of <paramref name="logOrderIds"/> are stored, and (with
    /// <paramref name="withOrders"/>) every order of the sale.
    /// </summary>
    public async Task<SaleRows> ReadSaleAsync(string sku, IReadOnlyCollection<string> logOrderIds, bool withOrders)
    {
        // One connection, statements one after another: a MySQL connection runs one command at a time. One
        // consistent snapshot too, so the counts, the inventory row and the orders agree while the writer commits.
        await using var connection = await MySqlTransactions.OpenAsync(options.Value.ConnectionString, CancellationToken.None);
        await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead);
        var perBucket = new Dictionary<int, long>();
        var byStatus = new SortedDictionary<string, (long Orders, long Units)>(StringComparer.Ordinal);
        await using (var command = Command(connection, transaction, "SELECT bucket, status, COUNT(*), COALESCE(SUM(quantity), 0) FROM orders WHERE sku = @sku GROUP BY bucket, status", sku))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                var (bucket, status, count, units) = (reader.GetInt32(0), reader.GetString(1), reader.GetInt64(2), reader.GetInt64(3));
                perBucket[bucket] = perBucket.GetValueOrDefault(bucket) + count;
                var sum = byStatus.GetValueOrDefault(status);
                byStatus[status] = (sum.Orders + count, sum.Units + units);
            }
        }

        long? available = null;
        await using (var command = Command(connection, transaction, InventorySql.ReadAvailable, sku))
        {
            if (await command.ExecuteScalarAsync() is long value)
            {
                available = value;
            }
        }

        long logRows;
        await using (var command = Command(connection, transaction, "SELECT COUNT(*) FROM inventory_log WHERE sku = @sku", sku))
        {
            logRows = Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
        }

        var stored = new HashSet<string>(StringComparer.Ordinal);
        foreach (var chunk in logOrderIds.Distinct(StringComparer.Ordinal).Chunk(StoredLookupChunk))
        {
            await using var command = Command(connection, transaction,
                $"SELECT order_id FROM orders WHERE sku = @sku AND order_id IN ({string.Join(", ", chunk.Select((_, i) => "@o" + i))})", sku);
            for (var i = 0; i < chunk.Length; i++)
            {
                command.Parameters.AddWithValue("@o" + i, chunk[i]);
            }

            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                stored.Add(reader.GetString(0));
            }
        }

        Dictionary<string, OrderProofKey>? orders = null;
        if (withOrders)
        {
            orders = new Dictionary<string, OrderProofKey>(StringComparer.Ordinal);
            await using var command = Command(connection, transaction, "SELECT order_id, bucket, user_id, request_id FROM orders WHERE sku = @sku", sku);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                orders[reader.GetString(0)] = new OrderProofKey(reader.GetInt32(1), reader.GetString(2), reader.GetString(3));
            }
        }

        await transaction.CommitAsync();
        return new SaleRows([.. byStatus.Select(s => new OrderStatusUnits(s.Key, s.Value.Orders, s.Value.Units))],
            available, logRows, perBucket, stored, orders);
    }

    public async Task<SkuTotals> TotalsAsync(string sku, CancellationToken cancellationToken = default)
    {
        await using var connection = await MySqlTransactions.OpenAsync(options.Value.ConnectionString, cancellationToken);
        await using var command = Command(connection, null, "SELECT COUNT(*), COALESCE(SUM(quantity), 0) FROM orders WHERE sku = @sku", sku);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new SkuTotals(reader.GetInt64(0), Convert.ToInt64(reader.GetValue(1), CultureInfo.InvariantCulture));
    }

    /// <summary>The inventory row's <c>available_stock</c>; null without a row.</summary>
    public async Task<long?> AvailableStockAsync(string sku, CancellationToken cancellationToken = default)
    {
        await using var connection = await MySqlTransactions.OpenAsync(options.Value.ConnectionString, cancellationToken);
        await using var command = Command(connection, null, "SELECT available_stock FROM inventory WHERE sku = @sku", sku);
        return await command.ExecuteScalarAsync(cancellationToken) is { } value and not DBNull
            ? Convert.ToInt64(value, CultureInfo.InvariantCulture)
            : null;
    }

    /// <summary>
    /// Every stored order's Redis commit time (Redis' clock) and its lag to the row's <c>created_at</c> (MySQL's
    /// clock): the pipeline's latency, meaningful when both run on one machine.
    /// </summary>
    public async Task<List<OrderTrip>> TripsAsync(string sku, CancellationToken cancellationToken = default)
    {
        await using var connection = await MySqlTransactions.OpenAsync(options.Value.ConnectionString, cancellationToken);
        await using var command = Command(connection, null, "SELECT committed_at_ms, UNIX_TIMESTAMP(created_at) * 1000 - committed_at_ms FROM orders WHERE sku = @sku", sku);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var trips = new List<OrderTrip>();
        while (await reader.ReadAsync(cancellationToken))
        {
            trips.Add(new OrderTrip(reader.GetInt64(0), (double)reader.GetDecimal(1)));
        }

        return trips;
    }

    private static MySqlCommand Command(MySqlConnection connection, MySqlTransaction? transaction, string sql, string sku)
    {
        var command = new MySqlCommand(sql, connection, transaction);
        command.Parameters.AddWithValue("@sku", sku);
        return command;
    }
}
