using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MySqlConnector;

namespace OrleansFlashSale.Persistence;

/// <summary>What a database-mode deduction came to.</summary>
public enum DatabaseDeductOutcome
{
    /// <summary>The order row and its stock deduction are committed (now, or by an earlier attempt).</summary>
    Deducted,

    /// <summary>Not enough stock left in <c>inventory.available_stock</c>; nothing was stored.</summary>
    SoldOut,
}

/// <summary>
/// Deduction of database-mode sales: the stock lives only in MySQL's inventory row, and callers wait for the
/// transaction that decides them. Callers of one SKU are grouped as in <see cref="GroupCommitter"/> (while one
/// group's transaction runs, the next collects), so the hot row is locked once per group, not once per order.
/// </summary>
/// <remarks>
/// One transaction per group: lock the inventory row (<c>FOR UPDATE</c>, which also orders groups of the same SKU
/// coming from other silos), find which orders are already stored (a replay after a crash: answered Deducted,
/// takes nothing), serve the longest prefix of the new ones, in arrival order, that the stock covers, insert them
/// with INSERT IGNORE, take the units of the rows actually inserted with one UPDATE, commit. A whole
/// attempt is repeated on deadlocks and lost connections (<see cref="MySqlTransactions.RetryAsync"/>); that is safe
/// because orders are keyed by order id. Thread-safe, no static state; the leader runs on the thread pool, never on a
/// grain's scheduler.
/// </remarks>
public sealed partial class DatabaseDeductor : IDatabaseDeductor
{
    private readonly OrderStoreOptions _options;
    private readonly OrderStoreMetrics _metrics;
    private readonly ILogger<DatabaseDeductor> _logger;
    private readonly string _flavorTag;
    private readonly SkuLanes<DeductionRecord, DatabaseDeductOutcome> _lanes;
    private long _transactions;

    public DatabaseDeductor(IOptions<OrderStoreOptions> options, OrderStoreMetrics metrics, ILogger<DatabaseDeductor> logger)
    {
        _options = options.Value;
        _metrics = metrics;
        _logger = logger;
        _flavorTag = _options.Flavor.ToString();
        // One transaction per SKU at a time: each locks the inventory row first and holds it to COMMIT, so a second
        // leader would only wait for the lock.
        _lanes = new(_options.MaxGroupSize, leadersPerSku: 1, RunGroupAsync);
    }

    /// <summary>Group transactions that completed (committed, or rolled back because there was nothing to take).</summary>
    public long Transactions => Interlocked.Read(ref _transactions);

    /// <summary>
    /// Completes when the group carrying <paramref name="record"/> is decided. Fails with the group's exception
    /// when its transaction failed for good: the outcome is then unknown to the caller and a replay with the same
    /// order id settles it.
    /// </summary>
    /// <exception cref="ArgumentException">Thrown at once for a record the schema would refuse.</exception>
    public Task<DatabaseDeductOutcome> DeductAsync(DeductionRecord record)
    {
        // A database-mode order has no bucket (-1).
        InventorySql.Check(record, bucketed: false);
        return _lanes.Enqueue(record.Sku, record);
    }

    private async Task RunGroupAsync(string sku, IReadOnlyList<LaneEntry<DeductionRecord, DatabaseDeductOutcome>> group)
    {
        var started = Stopwatch.GetTimestamp();
        var records = new DeductionRecord[group.Count];
        for (var i = 0; i < records.Length; i++)
        {
            records[i] = group[i].Item;
        }

        try
        {
            // No caller's token: a group serves many callers, and a transaction once started is seen through.
            var outcomes = await MySqlTransactions.RetryAsync(_options.MaxRetries, _ => RunOnceAsync(sku, records), (ex, attempt, delay) =>
            {
                _metrics.OrderTransaction(_flavorTag, OrderTransactionOutcome.Retried);
                LogRetrying(_logger, ex, sku, group.Count, attempt, (long)delay.TotalMilliseconds);
            }, CancellationToken.None);
            Interlocked.Increment(ref _transactions);
            for (var i = 0; i < group.Count; i++)
            {
                group[i].Completion.TrySetResult(outcomes[i]);
            }
        }
        catch (Exception ex)
        {
            // The lanes hand the exception to every caller of the group.
            _metrics.OrderTransaction(_flavorTag, OrderTransactionOutcome.Failed);
            LogGroupFailed(_logger, ex, sku, group.Count);
            throw;
        }
        finally
        {
            _metrics.OrderGroup(group.Count, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
    }

    /// <summary>One transaction attempt; the answer of each record, in group order.</summary>
    private async Task<DatabaseDeductOutcome[]> RunOnceAsync(string sku, DeductionRecord[] group)
    {
        await using var connection = await MySqlTransactions.OpenAsync(_options.ConnectionString, CancellationToken.None);
        var open = false;
        try
        {
            // Round trip 1: begin, lock the stock row, and learn which orders are already stored.
            open = true;
            var (row, stored) = await LockedInventory.LockAndReadStoredAsync(connection, sku, group, CancellationToken.None);
            if (row is not { } available)
            {
                throw new InvalidOperationException($"No inventory row for SKU '{sku}': the sale was not created.");
            }

            // Decide in arrival order: stored orders are already served; new ones while the stock lasts (a prefix:
            // once one does not fit, later ones are refused too, so nobody overtakes an earlier buyer).
            var outcomes = new DatabaseDeductOutcome[group.Length];
            var insert = new List<DeductionRecord>();
            var chosen = new HashSet<string>(StringComparer.Ordinal);
            var left = available;
            var full = false;
            for (var i = 0; i < group.Length; i++)
            {
                var record = group[i];
                if (stored.Contains(record.OrderId) || chosen.Contains(record.OrderId))
                {
                    outcomes[i] = DatabaseDeductOutcome.Deducted;
                }
                else if (!full && record.Quantity <= left)
                {
                    left -= record.Quantity;
                    chosen.Add(record.OrderId);
                    insert.Add(record);
                    outcomes[i] = DatabaseDeductOutcome.Deducted;
                }
                else
                {
                    full = true;
                    outcomes[i] = DatabaseDeductOutcome.SoldOut;
                }
            }

            if (insert.Count == 0)
            {
                await MySqlTransactions.ExecuteAsync(connection, InventorySql.Rollback, CancellationToken.None);
                open = false;
                _metrics.OrderTransaction(_flavorTag, stored.Count > 0 ? OrderTransactionOutcome.Duplicate : OrderTransactionOutcome.SoldOut);
                LogDecided(_logger, sku, group.Length, 0, 0, available);
                return outcomes;
            }

            // Round trip 2: insert, and count what this attempt really inserted (its batch id).
            var (units, _) = await LockedInventory.InsertAndSumAsync(connection, sku, insert, CancellationToken.None);

            // Round trip 3: one UPDATE for the group, then commit. The row is locked, so the stock cannot have moved.
            if (units > 0)
            {
                await LockedInventory.DeductAsync(connection, sku, units, CancellationToken.None);
            }

            await MySqlTransactions.ExecuteAsync(connection, InventorySql.Commit, CancellationToken.None);
            open = false;
            _metrics.OrderTransaction(_flavorTag, OrderTransactionOutcome.Committed);
            LogDecided(_logger, sku, group.Length, insert.Count, units, available);
            return outcomes;
        }
        catch when (open)
        {
            await MySqlTransactions.TryRollbackAsync(connection, _logger);
            throw;
        }
    }

    [LoggerMessage(EventId = 1120, Level = LogLevel.Debug, Message = "Database deduction {Sku}: group of {Count}, {Inserted} orders inserted, {Units} units taken of {Available} available")]
    private static partial void LogDecided(ILogger logger, string sku, int count, int inserted, long units, long available);

    [LoggerMessage(EventId = 1121, Level = LogLevel.Warning, Message = "Database deduction {Sku} of {Count} orders: attempt {Attempt} failed with a transient error; retrying in {DelayMs} ms")]
    private static partial void LogRetrying(ILogger logger, Exception exception, string sku, int count, int attempt, long delayMs);

    [LoggerMessage(EventId = 1122, Level = LogLevel.Error, Message = "Database deduction {Sku}: group of {Count} orders failed; every caller of the group gets the error")]
    private static partial void LogGroupFailed(ILogger logger, Exception exception, string sku, int count);
}
