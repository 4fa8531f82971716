using System.Globalization;
using MySqlConnector;

namespace OrleansFlashSale.Persistence;

/// <summary>
/// The round trips of a transaction that holds the SKU's inventory row locked while it decides order by order: a
/// drifted group applied again, and a database-mode group. Lock and read, insert what was chosen, take its units.
/// </summary>
internal static class LockedInventory
{
    /// <summary>
    /// Begins the transaction, locks the SKU's inventory row and reads its available stock (null: no row), and which
    /// of <paramref name="group"/>'s orders are stored already. The transaction is open from the moment this is sent.
    /// </summary>
    public static async Task<(long? Available, HashSet<string> Stored)> LockAndReadStoredAsync(MySqlConnection connection, string sku,
        IReadOnlyList<DeductionRecord> group, CancellationToken cancellationToken)
    {
        var stored = new HashSet<string>(StringComparer.Ordinal);
        await using var read = new MySqlCommand(InventorySql.LockAndReadStored(group.Count), connection);
        read.Parameters.AddWithValue(InventorySql.SkuParameter, sku);
        for (var i = 0; i < group.Count; i++)
        {
            read.Parameters.AddWithValue("@o" + i.ToString(CultureInfo.InvariantCulture), group[i].OrderId);
        }

        await using var reader = await read.ExecuteReaderAsync(cancellationToken);
        long? available = await reader.ReadAsync(cancellationToken) ? reader.GetInt64(0) : null;
        await reader.NextResultAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            stored.Add(reader.GetString(0));
        }

        return (available, stored);
    }

    /// <summary>
    /// Inserts <paramref name="records"/> as new orders and counts the units and rows this call really inserted:
    /// an order chosen may have been stored by another group meanwhile, and only rows carrying this call's batch id
    /// count.
    /// </summary>
    public static async Task<(long Units, int Inserted)> InsertAndSumAsync(MySqlConnection connection, string sku,
        IReadOnlyList<DeductionRecord> records, CancellationToken cancellationToken)
    {
        await using var write = new MySqlCommand { Connection = connection };
        write.Parameters.AddWithValue(InventorySql.SkuParameter, sku);
        write.Parameters.AddWithValue("@batch", InventorySql.NewBatchId());
        write.Parameters.AddWithValue("@status", OrderRowStatus.PendingPayment);
        write.CommandText = InventorySql.InsertOrders(records, (name, value) => write.Parameters.AddWithValue(name, value))
            + ";\n" + InventorySql.SumInserted(records.Count);
        await using var reader = await write.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            throw new InvalidOperationException("The SUM query of the inserted orders returned no row.");
        }

        return (Convert.ToInt64(reader.GetValue(0), CultureInfo.InvariantCulture), Convert.ToInt32(reader.GetValue(1), CultureInfo.InvariantCulture));
    }

    /// <summary>Takes <paramref name="units"/> from the locked row, which must have them: it cannot have moved meanwhile.</summary>
    public static async Task DeductAsync(MySqlConnection connection, string sku, long units, CancellationToken cancellationToken)
    {
        await using var deduct = new MySqlCommand(InventorySql.DeductLocked, connection);
        deduct.Parameters.AddWithValue(InventorySql.SkuParameter, sku);
        deduct.Parameters.AddWithValue(InventorySql.UnitsParameter, units);
        if (await deduct.ExecuteNonQueryAsync(cancellationToken) != 1)
        {
            throw new InvalidOperationException($"SKU '{sku}': the locked inventory row refused a deduction of {units} units.");
        }
    }
}
