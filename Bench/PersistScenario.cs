using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using MySqlConnector;
using OrleansFlashSale.Persistence;

namespace OrleansFlashSale.Bench;

/// <summary>
/// Orders per second written to MariaDB for one hot SKU: the real <see cref="GroupCommitter"/> against one
/// transaction per order, same producers, same database. Every run gets a fresh SKU and is checked before its
/// figure counts: order rows == orders acknowledged and available_stock == stock − orders.
/// </summary>
public sealed class PersistScenario
{
    public const string Name = "persist";
    public const int Producers = 64;
    public const int PipelinedWindow = 16;

    // Far more than any run can take, so no order ever fails for lack of stock.
    private const long Stock = 100_000_000;

    private const string BaselineHow =
        "64 producers, each on its own pooled MySqlConnection held for the run; per order: BEGIN; UPDATE inventory SET " +
        "available_stock = available_stock - 1 WHERE sku=@sku AND available_stock >= 1 (1 row required); INSERT INTO orders " +
        "(one row); COMMIT — four round trips, prepared once per producer, REPEATABLE READ (server default)";

    private readonly string _connectionString;

    private PersistScenario(string connectionString) => _connectionString = connectionString;

    public static PersistScenario FromEnvironment() => new(MySqlFromEnvironment());

    /// <summary>The store's reads of what MySQL holds, on the bench's database.</summary>
    public static OrderReadStore ReadsFromEnvironment() => Reads(MySqlFromEnvironment());

    public static OrderReadStore Reads(string connectionString) =>
        new(Microsoft.Extensions.Options.Options.Create(new OrderStoreOptions { ConnectionString = connectionString }));

    /// <summary>The MySQL connection string ./flashsale gives the silo.</summary>
    public static string MySqlFromEnvironment()
    {
        var connection = Environment.GetEnvironmentVariable("FlashSale__MySql__ConnectionString");
        if (string.IsNullOrWhiteSpace(connection))
        {
            throw new UsageException("FlashSale__MySql__ConnectionString is not set: run the benchmark through ./flashsale bench");
        }

        return connection;
    }

    public async Task<IReadOnlyList<BenchFigure>> RunAsync(BenchSettings settings, IBenchProgress progress)
    {
        progress.Status("persist: baseline, one transaction per order");
        var baseline = await RunBaselineAsync(settings, progress);
        progress.Status("persist: group commit, each producer waits for its commit");
        var waiting = await RunGroupCommitAsync(settings, progress, 1);
        progress.Status($"persist: group commit, {PipelinedWindow} outstanding per producer");
        var pipelined = await RunGroupCommitAsync(settings, progress, PipelinedWindow);
        progress.Status("persist: MariaDB insert floor");
        var floor = await RunInsertFloorAsync(settings, progress);

        return
        [
            Figure("group commit, producer waits for each commit", waiting, baseline,
                "GroupCommitter.SubmitAsync from 64 producers, each awaiting its record's commit before submitting the next (≤ 64 in flight)"),
            Figure($"group commit, {PipelinedWindow} in flight per producer", pipelined, baseline,
                $"GroupCommitter.SubmitAsync from 64 producers, each keeping up to {PipelinedWindow} records awaiting commit ({Producers * PipelinedWindow} in flight), as a queue consumer does"),
            // No target: the ceiling the group commit figures are up against, measured in the same run.
            new(Name, $"MariaDB insert floor: {FloorRows:N0}-row INSERTs, {FloorConnections} connections", "orders/s", floor.PerSecond,
                $"the same order rows as literal {FloorRows:N0}-row INSERT IGNORE statements, {FloorConnections} connections, autocommit: " +
                "no hot-row UPDATE, no transaction of several statements, no duplicate check, no parameters. No way of storing these " +
                "rows in this table is cheaper for MariaDB, so this figure bounds the orders/s of any committer on this machine",
                baseline.PerSecond, BaselineHow, null, null, GrainsVsRawLua.Details(floor, baseline)),
        ];

        BenchFigure Figure(string name, BenchRun measured, BenchRun against, string how) =>
            new(Name, name, "orders/s", measured.PerSecond, how, against.PerSecond, BaselineHow, 50, 100_000,
                GrainsVsRawLua.Details(measured, against));
    }

    private async Task<BenchRun> RunGroupCommitAsync(BenchSettings settings, IBenchProgress progress, int window)
    {
        // The committer comes from the same registration the silo uses, so its options and validation are the real ones.
        var configuration = new ConfigurationBuilder().AddEnvironmentVariables().Build();
        await using var services = new ServiceCollection()
            .AddLogging(b => b.SetMinimumLevel(LogLevel.Warning))
            .AddFlashSaleOrderStore(configuration)
            .BuildServiceProvider();
        var store = services.GetRequiredService<MySqlOrderStore>();
        var committer = services.GetRequiredService<GroupCommitter>();
        var sku = NewSku("g");
        await store.EnsureInventoryAsync(sku, Stock);
        try
        {
            var transactionsBefore = store.CommittedTransactions;
            var outcome = await LoadRunner.RunAsync(Producers * window, settings, async (_, n) =>
            {
                var record = new DeductionRecord($"{sku}-{n}", $"r{n}", sku, $"u{n % 100_000}", 1, (int)(n % 16), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
                var result = await committer.SubmitAsync(record);
                return result.Inserted > 0;
            }, progress, $"group commit ×{window}");

            var transactions = store.CommittedTransactions - transactionsBefore;
            await CheckAsync(sku, outcome.Started, outcome.Succeeded);
            return outcome.ToRun(new Dictionary<string, string>
            {
                ["sku"] = sku,
                ["orders"] = outcome.Succeeded.ToString(),
                ["transactions"] = transactions.ToString(),
                ["mean group size"] = (outcome.Succeeded / (double)Math.Max(1, transactions)).ToString("F1"),
                ["retries"] = store.Retries.ToString(),
            });
        }
        finally
        {
            await RetireAsync(sku);
        }
    }

    private async Task<BenchRun> RunBaselineAsync(BenchSettings settings, IBenchProgress progress)
    {
        var sku = NewSku("b");
        await using (var setup = new MySqlConnection(_connectionString))
        {
            await setup.OpenAsync();
            await using var ensure = new MySqlCommand(InventorySql.EnsureInventory, setup);
            ensure.Parameters.AddWithValue("@sku", sku);
            ensure.Parameters.AddWithValue("@total", Stock);
            await ensure.ExecuteNonQueryAsync();
        }

        var producers = new BaselineProducer[Producers];
        try
        {
            for (var i = 0; i < producers.Length; i++)
            {
                producers[i] = await BaselineProducer.OpenAsync(_connectionString, sku);
            }

            // Worker i owns producer i, so a connection never carries two transactions at once.
            var outcome = await LoadRunner.RunAsync(Producers, settings, (worker, n) => producers[worker].OrderAsync(n),
                progress, "one transaction per order");
            await CheckAsync(sku, outcome.Started, outcome.Succeeded);
            return outcome.ToRun(new Dictionary<string, string>
            {
                ["sku"] = sku,
                ["orders"] = outcome.Succeeded.ToString(),
                ["transactions"] = outcome.Succeeded.ToString(),
            });
        }
        finally
        {
            foreach (var producer in producers)
            {
                if (producer is not null)
                {
                    await producer.DisposeAsync();
                }
            }

            await RetireAsync(sku);
        }
    }

    private const int FloorConnections = 4;
    private const int FloorRows = 1_000;

    /// <summary>The cheapest way to put order rows into MariaDB: big literal INSERTs, nothing else.</summary>
    private async Task<BenchRun> RunInsertFloorAsync(BenchSettings settings, IBenchProgress progress)
    {
        var sku = NewSku("f");
        var connections = new MySqlConnection[FloorConnections];
        try
        {
            for (var i = 0; i < connections.Length; i++)
            {
                connections[i] = new MySqlConnection(_connectionString);
                await connections[i].OpenAsync();
            }

            var nowMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var outcome = await LoadRunner.RunAsync(FloorConnections, settings, async (worker, n) =>
            {
                await using var insert = new MySqlCommand(FloorInsert(sku, n, nowMs), connections[worker]);
                return await insert.ExecuteNonQueryAsync() == FloorRows;
            }, progress, "MariaDB insert floor");

            var rows = (await Reads(_connectionString).TotalsAsync(sku)).Orders;
            if (outcome.Succeeded != outcome.Started || rows != outcome.Started * FloorRows)
            {
                throw new BenchCheckException($"persist floor {sku}: {outcome.Succeeded} of {outcome.Started} statements inserted " +
                    $"{FloorRows} rows, {rows} rows stored; no figure is reported");
            }

            var counted = outcome.Measured * FloorRows;
            return new BenchRun(counted, outcome.Window, new Dictionary<string, string>
            {
                ["sku"] = sku,
                ["orders"] = rows.ToString(),
                ["statements"] = outcome.Started.ToString(),
            }.Concat(StackCpu.PerOperation(outcome.Cpu, counted)).ToDictionary());
        }
        finally
        {
            foreach (var connection in connections)
            {
                if (connection is not null)
                {
                    await connection.DisposeAsync();
                }
            }
        }
    }

    /// <summary>Statement <paramref name="statement"/>'s rows: ids <c>sku-n</c>, ascending as the committer's mostly are.</summary>
    private static string FloorInsert(string sku, long statement, long nowMs)
    {
        var sql = new System.Text.StringBuilder(FloorRows * 128);
        sql.Append("INSERT IGNORE INTO orders (order_id, request_id, sku, user_id, quantity, bucket, status, commit_batch, committed_at_ms) VALUES ");
        var batch = statement.ToString("x32", System.Globalization.CultureInfo.InvariantCulture);
        for (var i = 0; i < FloorRows; i++)
        {
            var n = statement * FloorRows + i;
            sql.Append(i == 0 ? "('" : ",('").Append(sku).Append('-').Append(n).Append("','r").Append(n).Append("','").Append(sku)
                .Append("','u").Append(n % 100_000).Append("',1,").Append(n % 16).Append(",'").Append(OrderRowStatus.PendingPayment)
                .Append("','").Append(batch).Append("',").Append(nowMs).Append(')');
        }

        return sql.ToString();
    }

    /// <summary>Refuses the run unless MariaDB holds exactly what was acknowledged.</summary>
    private async Task CheckAsync(string sku, long offered, long acknowledged)
    {
        var reads = Reads(_connectionString);
        var (count, units) = await reads.TotalsAsync(sku);
        var available = await reads.AvailableStockAsync(sku);
        if (offered != acknowledged || count != offered || units != offered || available != Stock - offered)
        {
            throw new BenchCheckException(
                $"persist {sku}: {offered} orders offered, {acknowledged} acknowledged, {count} rows ({units} units), " +
                $"available_stock {available} (expected {Stock - offered}); no figure is reported for this run");
        }
    }

    /// <summary>
    /// Removes a measured SKU's inventory row; its order rows stay. These orders never went through Redis, so no
    /// bucket can take their units back: while the row existed, the silo's expiry sweep, which finds sales through
    /// their inventory rows, would try to return every one of them once they were due (15 minutes later) and fail on
    /// every sweep, in the middle of whatever runs on the stack then. The insert floor's SKU never has a row.
    /// </summary>
    private async Task RetireAsync(string sku)
    {
        await using var connection = new MySqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var delete = new MySqlCommand("DELETE FROM inventory WHERE sku = @sku", connection);
        delete.Parameters.AddWithValue("@sku", sku);
        await delete.ExecuteNonQueryAsync();
    }

    private static string NewSku(string kind) => $"bench-{kind}-{DateTime.UtcNow:MMddHHmmss}-{Random.Shared.Next(10_000):D4}";

    /// <summary>The baseline's producer: one connection, its commands prepared once, one transaction per order.</summary>
    private sealed class BaselineProducer : IAsyncDisposable
    {
        private readonly MySqlConnection _connection;
        private readonly MySqlCommand _update;
        private readonly MySqlCommand _insert;
        private readonly string _sku;

        private BaselineProducer(MySqlConnection connection, string sku)
        {
            _connection = connection;
            _sku = sku;
            _update = new MySqlCommand(
                "UPDATE inventory SET available_stock = available_stock - @q WHERE sku = @sku AND available_stock >= @q", connection);
            _update.Parameters.AddWithValue("@q", 1);
            _update.Parameters.AddWithValue("@sku", sku);
            _insert = new MySqlCommand(
                "INSERT INTO orders (order_id, request_id, sku, user_id, quantity, bucket, status, commit_batch, committed_at_ms) " +
                "VALUES (@o, @r, @sku, @u, @q, @b, @status, @batch, @t)", connection);
            foreach (var name in new[] { "@o", "@r", "@u", "@batch" })
            {
                _insert.Parameters.AddWithValue(name, "");
            }

            _insert.Parameters.AddWithValue("@sku", sku);
            _insert.Parameters.AddWithValue("@q", 1);
            _insert.Parameters.AddWithValue("@b", 0);
            _insert.Parameters.AddWithValue("@status", OrderRowStatus.PendingPayment);
            _insert.Parameters.AddWithValue("@t", 0L);
        }

        public static async Task<BaselineProducer> OpenAsync(string connectionString, string sku)
        {
            var connection = new MySqlConnection(connectionString);
            await connection.OpenAsync();
            return new BaselineProducer(connection, sku);
        }

        public async Task<bool> OrderAsync(long n)
        {
            await using var transaction = await _connection.BeginTransactionAsync();
            _update.Transaction = transaction;
            _insert.Transaction = transaction;
            if (await _update.ExecuteNonQueryAsync() != 1)
            {
                await transaction.RollbackAsync();
                return false;
            }

            _insert.Parameters["@o"].Value = $"{_sku}-{n}";
            _insert.Parameters["@r"].Value = $"r{n}";
            _insert.Parameters["@u"].Value = $"u{n % 100_000}";
            _insert.Parameters["@b"].Value = (int)(n % 16);
            _insert.Parameters["@batch"].Value = Guid.NewGuid().ToString("N");
            _insert.Parameters["@t"].Value = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            await _insert.ExecuteNonQueryAsync();
            await transaction.CommitAsync();
            return true;
        }

        public async ValueTask DisposeAsync()
        {
            await _update.DisposeAsync();
            await _insert.DisposeAsync();
            await _connection.DisposeAsync();
        }
    }
}
