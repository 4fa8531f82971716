using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
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
/// attempt is repeated on deadlocks and lost connections; that is safe because orders are keyed by order id.
/// Thread-safe, no static state; the leader runs on the thread pool, never on a grain's scheduler.
/// </remarks>
public sealed partial class DatabaseDeductor
{
    private static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(20);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(1);

    private readonly OrderStoreOptions _options;
    private readonly OrderStoreMetrics _metrics;
    private readonly ILogger<DatabaseDeductor> _logger;
    private readonly string _flavorTag;
    private readonly ConcurrentDictionary<string, Lane> _lanes = new(StringComparer.Ordinal);
    private long _transactions;

    public DatabaseDeductor(IOptions<OrderStoreOptions> options, OrderStoreMetrics metrics, ILogger<DatabaseDeductor> logger)
    {
        _options = options.Value;
        _metrics = metrics;
        _logger = logger;
        _flavorTag = _options.Flavor.ToString();
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
        Check(record);
        var pending = new Pending(record);
        while (true)
        {
            var lane = _lanes.GetOrAdd(record.Sku, static s => new Lane(s));
            bool lead;
            lock (lane.Gate)
            {
                if (lane.Retired)
                {
                    // Its leader removed it after finding nothing to do; the next GetOrAdd makes a new one.
                    continue;
                }

                lane.Collecting.Add(pending);
                lead = !lane.Running;
                lane.Running = true;
            }

            if (lead)
            {
                // The leader must not borrow the calling grain's scheduler: it serves every caller of the SKU.
                ThreadPool.UnsafeQueueUserWorkItem(static state => _ = state.Deductor.LeadAsync(state.Lane), (Deductor: this, Lane: lane), preferLocal: false);
            }

            return pending.Completion.Task;
        }
    }

    private async Task LeadAsync(Lane lane)
    {
        while (true)
        {
            List<Pending> group;
            lock (lane.Gate)
            {
                if (lane.Collecting.Count == 0)
                {
                    lane.Running = false;
                    lane.Retired = true;
                    _lanes.TryRemove(new KeyValuePair<string, Lane>(lane.Sku, lane));
                    return;
                }

                var take = Math.Min(lane.Collecting.Count, _options.MaxGroupSize);
                group = lane.Collecting.GetRange(0, take);
                lane.Collecting.RemoveRange(0, take);
            }

            await RunGroupAsync(lane.Sku, group);
        }
    }

    private async Task RunGroupAsync(string sku, List<Pending> group)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    var outcomes = await RunOnceAsync(sku, group);
                    Interlocked.Increment(ref _transactions);
                    for (var i = 0; i < group.Count; i++)
                    {
                        group[i].Completion.TrySetResult(outcomes[i]);
                    }

                    return;
                }
                catch (Exception ex) when (attempt <= _options.MaxRetries && MySqlOrderStore.IsTransient(ex))
                {
                    _metrics.OrderTransaction(_flavorTag, OrderTransactionOutcome.Retried);
                    var delay = Backoff(attempt);
                    LogRetrying(_logger, ex, sku, group.Count, attempt, (long)delay.TotalMilliseconds);
                    await Task.Delay(delay);
                }
            }
        }
        catch (Exception ex)
        {
            _metrics.OrderTransaction(_flavorTag, OrderTransactionOutcome.Failed);
            LogGroupFailed(_logger, ex, sku, group.Count);
            foreach (var pending in group)
            {
                pending.Completion.TrySetException(ex);
            }
        }
        finally
        {
            _metrics.OrderGroup(group.Count, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
    }

    /// <summary>One transaction attempt; the answer of each record, in group order.</summary>
    private async Task<DatabaseDeductOutcome[]> RunOnceAsync(string sku, List<Pending> group)
    {
        await using var connection = new MySqlConnection(_options.ConnectionString);
        await connection.OpenAsync();
        var open = false;
        try
        {
            // Round trip 1: begin, lock the stock row, and learn which orders are already stored.
            long available;
            var stored = new HashSet<string>(StringComparer.Ordinal);
            await using (var read = new MySqlCommand { Connection = connection })
            {
                var ids = new StringBuilder();
                for (var i = 0; i < group.Count; i++)
                {
                    ids.Append(i == 0 ? "@o" : ", @o").Append(i.ToString(CultureInfo.InvariantCulture));
                    read.Parameters.AddWithValue("@o" + i.ToString(CultureInfo.InvariantCulture), group[i].Record.OrderId);
                }

                read.Parameters.AddWithValue("@sku", sku);
                read.CommandText =
                    "SET TRANSACTION ISOLATION LEVEL READ COMMITTED;\n" +
                    "START TRANSACTION;\n" +
                    "SELECT available_stock FROM inventory WHERE sku = @sku FOR UPDATE;\n" +
                    $"SELECT order_id FROM orders WHERE order_id IN ({ids})";
                open = true;
                await using var reader = await read.ExecuteReaderAsync();
                if (!await reader.ReadAsync())
                {
                    throw new InvalidOperationException($"No inventory row for SKU '{sku}': the sale was not created.");
                }

                available = reader.GetInt64(0);
                await reader.NextResultAsync();
                while (await reader.ReadAsync())
                {
                    stored.Add(reader.GetString(0));
                }
            }

            // Decide in arrival order: stored orders are already served; new ones while the stock lasts (a prefix:
            // once one does not fit, later ones are refused too, so nobody overtakes an earlier buyer).
            var outcomes = new DatabaseDeductOutcome[group.Count];
            var insert = new List<DeductionRecord>();
            var chosen = new HashSet<string>(StringComparer.Ordinal);
            var left = available;
            var full = false;
            for (var i = 0; i < group.Count; i++)
            {
                var record = group[i].Record;
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
                await ExecuteAsync(connection, InventorySql.Rollback);
                open = false;
                _metrics.OrderTransaction(_flavorTag, stored.Count > 0 ? OrderTransactionOutcome.Duplicate : OrderTransactionOutcome.SoldOut);
                LogDecided(_logger, sku, group.Count, 0, 0, available);
                return outcomes;
            }

            // Round trip 2: insert, and count what this attempt really inserted (its batch id).
            var batch = Guid.CreateVersion7().ToString("N");
            long units;
            await using (var write = BuildInsert(sku, batch, insert, connection))
            {
                await using var reader = await write.ExecuteReaderAsync();
                if (!await reader.ReadAsync())
                {
                    throw new InvalidOperationException("The group's SUM query returned no row.");
                }

                units = Convert.ToInt64(reader.GetValue(0), CultureInfo.InvariantCulture);
            }

            // Round trip 3: one UPDATE for the group, then commit. The row is locked, so the stock cannot have moved.
            if (units > 0)
            {
                await using var deduct = new MySqlCommand(
                    "UPDATE inventory SET available_stock = available_stock - @units WHERE sku = @sku AND available_stock >= @units", connection);
                deduct.Parameters.AddWithValue("@units", units);
                deduct.Parameters.AddWithValue("@sku", sku);
                if (await deduct.ExecuteNonQueryAsync() != 1)
                {
                    throw new InvalidOperationException($"SKU '{sku}': the locked inventory row refused a deduction of {units} units.");
                }
            }

            await ExecuteAsync(connection, InventorySql.Commit);
            open = false;
            _metrics.OrderTransaction(_flavorTag, OrderTransactionOutcome.Committed);
            LogDecided(_logger, sku, group.Count, insert.Count, units, available);
            return outcomes;
        }
        catch when (open)
        {
            await TryRollbackAsync(connection);
            throw;
        }
    }

    private static MySqlCommand BuildInsert(string sku, string batch, List<DeductionRecord> records, MySqlConnection connection)
    {
        var command = new MySqlCommand { Connection = connection };
        command.Parameters.AddWithValue("@sku", sku);
        command.Parameters.AddWithValue("@batch", batch);
        command.Parameters.AddWithValue("@status", OrderRowStatus.PendingPayment);
        // Only rows inserted now carry this batch id: a row stored meanwhile by someone else counts nothing.
        command.CommandText = InventorySql.InsertOrders(records, (name, value) => command.Parameters.AddWithValue(name, value))
            + ";\n" + InventorySql.SumInserted(records.Count);
        return command;
    }

    /// <summary>Like <see cref="InventorySql.Check"/>, except that a database-mode order has no bucket (-1).</summary>
    private static void Check(DeductionRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        InventorySql.CheckText(record.OrderId, nameof(record.OrderId));
        InventorySql.CheckText(record.RequestId, nameof(record.RequestId));
        InventorySql.CheckText(record.Sku, nameof(record.Sku));
        InventorySql.CheckText(record.UserId, nameof(record.UserId));
        if (record.Quantity < 1)
        {
            throw new ArgumentException($"Order '{record.OrderId}' has quantity {record.Quantity}; it must be at least 1.", nameof(record));
        }

        if (record.CommittedAtMs < 0)
        {
            throw new ArgumentException($"Order '{record.OrderId}' has a negative CommittedAtMs.", nameof(record));
        }
    }

    private static async Task ExecuteAsync(MySqlConnection connection, string sql)
    {
        await using var command = new MySqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private async Task TryRollbackAsync(MySqlConnection connection)
    {
        try
        {
            if (connection.State == System.Data.ConnectionState.Open)
            {
                await ExecuteAsync(connection, InventorySql.Rollback);
            }
        }
        catch (Exception ex) when (ex is MySqlException or IOException or InvalidOperationException)
        {
            // The connection is broken; the server rolls back when it notices, and the pool drops it.
            LogRollbackFailed(_logger, ex);
        }
    }

    private static TimeSpan Backoff(int attempt)
    {
        // Full jitter, so groups that deadlocked each other do not collide again in step.
        var ceiling = Math.Min(MaxBackoff.TotalMilliseconds, FirstBackoff.TotalMilliseconds * Math.Pow(2, attempt - 1));
        return TimeSpan.FromMilliseconds(ceiling / 2 + Random.Shared.NextDouble() * ceiling / 2);
    }

    [LoggerMessage(EventId = 1120, Level = LogLevel.Debug, Message = "Database deduction {Sku}: group of {Count}, {Inserted} orders inserted, {Units} units taken of {Available} available")]
    private static partial void LogDecided(ILogger logger, string sku, int count, int inserted, long units, long available);

    [LoggerMessage(EventId = 1121, Level = LogLevel.Warning, Message = "Database deduction {Sku} of {Count} orders: attempt {Attempt} failed with a transient error; retrying in {DelayMs} ms")]
    private static partial void LogRetrying(ILogger logger, Exception exception, string sku, int count, int attempt, long delayMs);

    [LoggerMessage(EventId = 1122, Level = LogLevel.Error, Message = "Database deduction {Sku}: group of {Count} orders failed; every caller of the group gets the error")]
    private static partial void LogGroupFailed(ILogger logger, Exception exception, string sku, int count);

    [LoggerMessage(EventId = 1123, Level = LogLevel.Warning, Message = "ROLLBACK after a failed database deduction could not be sent; the server rolls back when the connection closes")]
    private static partial void LogRollbackFailed(ILogger logger, Exception exception);

    private sealed class Pending(DeductionRecord record)
    {
        public DeductionRecord Record { get; } = record;

        // Callers resume on their own context, not inline on the leader, which moves on to the next group at once.
        public TaskCompletionSource<DatabaseDeductOutcome> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>One SKU's collecting group and whether a leader runs. Guarded by <see cref="Gate"/>.</summary>
    private sealed class Lane(string sku)
    {
        public string Sku { get; } = sku;

        public Lock Gate { get; } = new();

        public List<Pending> Collecting { get; } = [];

        public bool Running { get; set; }

        public bool Retired { get; set; }
    }
}
