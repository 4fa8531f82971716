using Microsoft.Extensions.Logging;
using MySqlConnector;

namespace OrleansFlashSale.Persistence;

/// <summary>Inventory drift: a group MySQL has too little stock for is applied again, order by order.</summary>
public sealed partial class MySqlOrderStore
{
    /// <summary>
    /// A drifted group applied again, in a transaction of its own: with the inventory row locked, its new orders are
    /// stored one by one in commit order while the stock lasts (<see cref="InventorySql.Fit"/>); the others are
    /// returned as refused.
    /// </summary>
    private async Task<GroupCommitResult> CommitWhatFitsAsync(MySqlConnection connection, string sku, IReadOnlyList<DeductionRecord> group,
        CancellationToken cancellationToken)
    {
        var open = false;
        try
        {
            long? available;
            var stored = new HashSet<string>(StringComparer.Ordinal);
            await using (var read = new MySqlCommand(InventorySql.LockAndReadStored(group.Count), connection))
            {
                read.Parameters.AddWithValue(InventorySql.SkuParameter, sku);
                for (var i = 0; i < group.Count; i++)
                {
                    read.Parameters.AddWithValue("@o" + i.ToString(System.Globalization.CultureInfo.InvariantCulture), group[i].OrderId);
                }

                open = true;
                await using var reader = await read.ExecuteReaderAsync(cancellationToken);
                available = await reader.ReadAsync(cancellationToken) ? reader.GetInt64(0) : null;
                await reader.NextResultAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    stored.Add(reader.GetString(0));
                }
            }

            var fitted = InventorySql.Fit(group, stored, available);
            if (fitted.Insert.Count == 0)
            {
                await ExecuteAsync(connection, InventorySql.Rollback, cancellationToken);
                open = false;
                return new GroupCommitResult(group.Count, 0, 0) { Refused = fitted.Refused };
            }

            long units;
            int inserted;
            await using (var write = new MySqlCommand { Connection = connection })
            {
                write.Parameters.AddWithValue(InventorySql.SkuParameter, sku);
                write.Parameters.AddWithValue("@batch", NewBatchId());
                write.Parameters.AddWithValue("@status", OrderRowStatus.PendingPayment);
                // Always summed: an order chosen here may have been stored by another group meanwhile.
                write.CommandText = InventorySql.InsertOrders(fitted.Insert, (name, value) => write.Parameters.AddWithValue(name, value))
                    + ";\n" + InventorySql.SumInserted(fitted.Insert.Count);
                await using var reader = await write.ExecuteReaderAsync(cancellationToken);
                if (!await reader.ReadAsync(cancellationToken))
                {
                    throw new InvalidOperationException("The drifted group's SUM query returned no row.");
                }

                units = Convert.ToInt64(reader.GetValue(0), System.Globalization.CultureInfo.InvariantCulture);
                inserted = Convert.ToInt32(reader.GetValue(1), System.Globalization.CultureInfo.InvariantCulture);
            }

            if (units > 0)
            {
                await using var deduct = new MySqlCommand(InventorySql.DeductLocked, connection);
                deduct.Parameters.AddWithValue(InventorySql.SkuParameter, sku);
                deduct.Parameters.AddWithValue(InventorySql.UnitsParameter, units);
                if (await deduct.ExecuteNonQueryAsync(cancellationToken) != 1)
                {
                    throw new InvalidOperationException($"SKU '{sku}': the locked inventory row refused a deduction of {units} units.");
                }
            }

            await ExecuteAsync(connection, InventorySql.Commit, cancellationToken);
            open = false;
            return new GroupCommitResult(group.Count, inserted, units) { Refused = fitted.Refused };
        }
        catch when (open)
        {
            await TryRollbackAsync(connection);
            throw;
        }
    }

    [LoggerMessage(EventId = 1103, Level = LogLevel.Error, Message = "Order group {Sku} of {Count} orders drifted: {Refused} orders ({RefusedUnits} units) did not fit the stock MySQL has left ({Available} when the first was tried; null: no inventory row) and were not stored; {Inserted} orders ({Units} units) were")]
    private static partial void LogDrift(ILogger logger, string sku, int count, int refused, long refusedUnits, long? available, int inserted, long units);

    [LoggerMessage(EventId = 1105, Level = LogLevel.Warning, Message = "Order group {Sku}: the hinted UPDATE of {Units} units failed with {Available} available (null: no inventory row); applying the group order by order")]
    private static partial void LogHintRefused(ILogger logger, Exception exception, string sku, long units, long? available);
}
