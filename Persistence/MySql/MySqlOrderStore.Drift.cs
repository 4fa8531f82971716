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
            // Set before sending: the batch starts the transaction even if a later statement of it fails.
            open = true;
            var (available, stored) = await LockedInventory.LockAndReadStoredAsync(connection, sku, group, cancellationToken);
            var fitted = InventorySql.Fit(group, stored, available);
            if (fitted.Insert.Count == 0)
            {
                await MySqlTransactions.ExecuteAsync(connection, InventorySql.Rollback, cancellationToken);
                open = false;
                return new GroupCommitResult(group.Count, 0, 0) { Refused = fitted.Refused };
            }

            var (units, inserted) = await LockedInventory.InsertAndSumAsync(connection, sku, fitted.Insert, cancellationToken);
            if (units > 0)
            {
                await LockedInventory.DeductAsync(connection, sku, units, cancellationToken);
            }

            await MySqlTransactions.ExecuteAsync(connection, InventorySql.Commit, cancellationToken);
            open = false;
            return new GroupCommitResult(group.Count, inserted, units) { Refused = fitted.Refused };
        }
        catch when (open)
        {
            await MySqlTransactions.TryRollbackAsync(connection, _logger);
            throw;
        }
    }

    [LoggerMessage(EventId = 1103, Level = LogLevel.Error, Message = "Order group {Sku} of {Count} orders drifted: {Refused} orders ({RefusedUnits} units) did not fit the stock MySQL has left ({Available} when the first was tried; null: no inventory row) and were not stored; {Inserted} orders ({Units} units) were")]
    private static partial void LogDrift(ILogger logger, string sku, int count, int refused, long refusedUnits, long? available, int inserted, long units);

    [LoggerMessage(EventId = 1105, Level = LogLevel.Warning, Message = "Order group {Sku}: the hinted UPDATE of {Units} units failed with {Available} available (null: no inventory row); applying the group order by order")]
    private static partial void LogHintRefused(ILogger logger, Exception exception, string sku, long units, long? available);
}
