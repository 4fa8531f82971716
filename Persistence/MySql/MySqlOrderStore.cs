using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MySqlConnector;

namespace OrleansFlashSale.Persistence;

/// <summary>
/// Writes groups of deductions of one SKU to MySQL, one transaction per group (see <see cref="InventorySql"/>).
/// Thread-safe; every call takes its own pooled connection.
/// </summary>
/// <remarks>
/// A group can be committed any number of times: orders are keyed by order id and the stock moves by the quantity
/// of the rows inserted now. That makes a retry after a lost connection safe even when the lost attempt did commit:
/// the retry then finds every order stored and reports it as a duplicate. The same holds for a drifted group
/// applied again order by order: what it stored is found stored on the next delivery.
/// </remarks>
public sealed partial class MySqlOrderStore : IInventoryStore
{
    private readonly OrderStoreOptions _options;
    private readonly InventorySql _sql;
    private readonly OrderStoreMetrics _metrics;
    private readonly ILogger<MySqlOrderStore> _logger;
    private readonly string _flavorTag;
    private long _committedTransactions;
    private long _retries;

    public MySqlOrderStore(IOptions<OrderStoreOptions> options, OrderStoreMetrics metrics, ILogger<MySqlOrderStore> logger)
    {
        _options = options.Value;
        _sql = new InventorySql(_options.Flavor);
        _metrics = metrics;
        _logger = logger;
        _flavorTag = _options.Flavor.ToString();
    }

    public OrderStoreFlavor Flavor => _options.Flavor;

    /// <summary>Group transactions that completed, including those that found every order already stored.</summary>
    public long CommittedTransactions => Interlocked.Read(ref _committedTransactions);

    /// <summary>Transaction attempts that failed with a transient error and were tried again.</summary>
    public long Retries => Interlocked.Read(ref _retries);

    /// <summary>Creates the SKU's inventory row with all of <paramref name="totalStock"/> available, unless it exists.</summary>
    public async Task EnsureInventoryAsync(string sku, long totalStock, CancellationToken cancellationToken = default)
    {
        InventorySql.CheckText(sku, nameof(sku));
        ArgumentOutOfRangeException.ThrowIfNegative(totalStock);
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = new MySqlCommand(InventorySql.EnsureInventory, connection);
        command.Parameters.AddWithValue("@sku", sku);
        command.Parameters.AddWithValue("@total", totalStock);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>The SKU's <c>inventory.available_stock</c>, or null without an inventory row (database-mode status).</summary>
    public async Task<long?> GetAvailableAsync(string sku, CancellationToken cancellationToken = default)
    {
        await using var connection = await OpenAsync(cancellationToken);
        return await ReadAvailableAsync(connection, sku, cancellationToken);
    }

    /// <summary>
    /// Stores <paramref name="group"/> (orders of <paramref name="sku"/>) and takes their units from the SKU's
    /// available stock, all in one transaction. Orders already stored are skipped and take nothing.
    /// </summary>
    /// <remarks>
    /// When MySQL has less stock than the new orders take (drift), that transaction is rolled back and the group is
    /// applied again, order by order in commit order (<see cref="InventorySql.Fit"/>): the orders that fit are stored
    /// and their units taken, and the others come back in <see cref="GroupCommitResult.Refused"/>, not stored.
    /// </remarks>
    /// <exception cref="ArgumentException">
    /// A record the schema would refuse or of another SKU, or more than <see cref="OrderStoreOptions.MaxGroupSize"/>
    /// records; nothing was sent.
    /// </exception>
    public async Task<GroupCommitResult> CommitGroupAsync(string sku, IReadOnlyList<DeductionRecord> group, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(group);
        if (group.Count > _options.MaxGroupSize)
        {
            throw new ArgumentException(
                $"A group holds at most {_options.MaxGroupSize} records ({OrderStoreOptions.Section}:MaxGroupSize); this one has {group.Count}.", nameof(group));
        }

        // Validates every record before anything is sent.
        var plan = _sql.Build(sku, group, InventorySql.NewBatchId());
        var started = Stopwatch.GetTimestamp();
        try
        {
            return await MySqlTransactions.RetryAsync(_options.MaxRetries, async attempt =>
            {
                if (attempt > 1)
                {
                    // A fresh id: rows of the failed attempt are gone, and a committed one must not be counted again.
                    plan = _sql.Build(sku, group, InventorySql.NewBatchId());
                }

                var result = await CommitOnceAsync(plan, group, cancellationToken);
                Interlocked.Increment(ref _committedTransactions);
                if (result.Refused.Count > 0)
                {
                    _metrics.OrderTransaction(_flavorTag, OrderTransactionOutcome.Drift);
                    LogDrift(_logger, sku, group.Count, result.Refused.Count, result.Refused.Sum(r => (long)r.Record.Quantity),
                        result.Refused[0].Available, result.Inserted, result.Units);
                }
                else
                {
                    _metrics.OrderTransaction(_flavorTag, result.Inserted == 0 ? OrderTransactionOutcome.Duplicate : OrderTransactionOutcome.Committed);
                }

                LogCommitted(_logger, sku, result.Offered, result.Inserted, result.Units, plan.BatchId, attempt);
                return result;
            }, (ex, attempt, delay) =>
            {
                Interlocked.Increment(ref _retries);
                _metrics.OrderTransaction(_flavorTag, OrderTransactionOutcome.Retried);
                LogRetrying(_logger, ex, sku, group.Count, attempt, _options.MaxRetries, (long)delay.TotalMilliseconds);
            }, cancellationToken);
        }
        catch (Exception ex) when (ex is not ArgumentException)
        {
            _metrics.OrderTransaction(_flavorTag, OrderTransactionOutcome.Failed);
            throw;
        }
        finally
        {
            _metrics.OrderGroup(group.Count, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
    }

    private async Task<GroupCommitResult> CommitOnceAsync(GroupSql plan, IReadOnlyList<DeductionRecord> group, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        if (_options.Flavor == OrderStoreFlavor.AliSql
            && connection.ServerVersion.Contains("MariaDB", StringComparison.OrdinalIgnoreCase))
        {
            // MariaDB reads the hint as a comment: the UPDATE would leave the transaction open and nothing would commit.
            throw new InvalidOperationException(
                $"{OrderStoreOptions.Section}:Flavor is AliSql but the server is {connection.ServerVersion}, which ignores the Inventory Hint. Use MariaDb.");
        }

        var open = false;
        try
        {
            long units;
            int inserted;
            await using (var stage = Command(connection, string.Join(";\n", plan.StageStatements), plan.Parameters))
            {
                // Set before sending: the batch starts the transaction even if a later statement of it fails.
                open = true;
                // Only the INSERT of the batch affects rows: INSERT IGNORE counts the orders it inserted.
                inserted = await stage.ExecuteNonQueryAsync(cancellationToken);
            }

            if (inserted == plan.Offered)
            {
                units = plan.OfferedUnits;
            }
            else if (inserted == 0)
            {
                units = 0;
            }
            else
            {
                // Some orders were stored before (a redelivery): count exactly the units of the rows inserted now.
                await using var sum = Command(connection, plan.SumStatement, plan.Parameters);
                await using var reader = await sum.ExecuteReaderAsync(cancellationToken);
                if (!await reader.ReadAsync(cancellationToken))
                {
                    throw new InvalidOperationException("The group's SUM query returned no row.");
                }

                units = Convert.ToInt64(reader.GetValue(0), System.Globalization.CultureInfo.InvariantCulture);
                var counted = Convert.ToInt32(reader.GetValue(1), System.Globalization.CultureInfo.InvariantCulture);
                if (counted != inserted)
                {
                    throw new InvalidOperationException(
                        $"The group inserted {inserted} orders but finds {counted} rows of its batch {plan.BatchId}.");
                }
            }

            if (units == 0)
            {
                // Every order was already stored: nothing was written, nothing to take.
                await MySqlTransactions.ExecuteAsync(connection, InventorySql.Rollback, cancellationToken);
                open = false;
                return new GroupCommitResult(plan.Offered, 0, 0);
            }

            int affected;
            await using (var deduct = new MySqlCommand(plan.DeductStatement, connection))
            {
                // Only the SKU and the units: the group's thousands of row parameters are not needed again.
                deduct.Parameters.AddWithValue(InventorySql.SkuParameter, plan.Sku);
                deduct.Parameters.AddWithValue(InventorySql.UnitsParameter, units);
                try
                {
                    affected = await deduct.ExecuteNonQueryAsync(cancellationToken);
                }
                catch (MySqlException ex) when (plan.CommitStatement is null && !MySqlTransactions.IsTransient(ex))
                {
                    // AliSQL: TARGET_AFFECT_ROW(1) fails the statement and ROLLBACK_ON_FAIL has already rolled back.
                    // The error does not say why; the stock does.
                    await MySqlTransactions.ExecuteAsync(connection, InventorySql.Rollback, cancellationToken);
                    open = false;
                    var left = await ReadAvailableAsync(connection, plan.Sku, cancellationToken);
                    if (left is not null && left >= units)
                    {
                        throw;
                    }

                    LogHintRefused(_logger, ex, plan.Sku, units, left);
                    affected = 0;
                }
            }

            if (affected == 0)
            {
                // Drift: too little stock for the whole group. Rolled back here (AliSQL: already), and applied again
                // order by order, so only the orders that do not fit stay out.
                if (open)
                {
                    await MySqlTransactions.ExecuteAsync(connection, InventorySql.Rollback, cancellationToken);
                    open = false;
                }

                return await CommitWhatFitsAsync(connection, plan.Sku, group, cancellationToken);
            }

            if (plan.CommitStatement is { } commit)
            {
                await MySqlTransactions.ExecuteAsync(connection, commit, cancellationToken);
            }

            open = false;
            return new GroupCommitResult(plan.Offered, inserted, units);
        }
        catch when (open)
        {
            await MySqlTransactions.TryRollbackAsync(connection, _logger);
            throw;
        }
    }

    private Task<MySqlConnection> OpenAsync(CancellationToken cancellationToken) =>
        MySqlTransactions.OpenAsync(_options.ConnectionString, cancellationToken);

    private static MySqlCommand Command(MySqlConnection connection, string sql, IReadOnlyList<KeyValuePair<string, object>> parameters)
    {
        var command = new MySqlCommand(sql, connection);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        return command;
    }

    private static async Task<long?> ReadAvailableAsync(MySqlConnection connection, string sku, CancellationToken cancellationToken)
    {
        await using var command = new MySqlCommand(InventorySql.ReadAvailable, connection);
        command.Parameters.AddWithValue("@sku", sku);
        return await command.ExecuteScalarAsync(cancellationToken) is { } value and not DBNull
            ? Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture)
            : null;
    }

    [LoggerMessage(EventId = 1101, Level = LogLevel.Debug, Message = "Order group {Sku}: {Inserted} of {Offered} orders inserted, {Units} units taken (batch {Batch}, attempt {Attempt})")]
    private static partial void LogCommitted(ILogger logger, string sku, int offered, int inserted, long units, string batch, int attempt);

    [LoggerMessage(EventId = 1102, Level = LogLevel.Warning, Message = "Order group {Sku} of {Count} orders: attempt {Attempt} failed with a transient error ({MaxRetries} retries allowed); retrying in {DelayMs} ms")]
    private static partial void LogRetrying(ILogger logger, Exception exception, string sku, int count, int attempt, int maxRetries, long delayMs);
}
