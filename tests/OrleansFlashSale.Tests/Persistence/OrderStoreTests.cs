using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using MySqlConnector;
using OrleansFlashSale.Grains;
using OrleansFlashSale.Persistence;
using Xunit.Abstractions;

namespace OrleansFlashSale.Tests;

/// <summary>The schema applied as a silo applies it, and the order store and group committer as the DI container builds them.</summary>
public sealed class OrderStoreFixture : IAsyncLifetime
{
    private ServiceProvider? _services;

    public MySqlOrderStore Store { get; private set; } = null!;

    public GroupCommitter Committer { get; private set; } = null!;

    public OrderStoreMetrics Metrics { get; private set; } = null!;

    public static SchemaMigrator Migrator() => new(TestStack.MySql, NullLogger<SchemaMigrator>.Instance);

    public async Task InitializeAsync()
    {
        await Migrator().ApplyAsync(CancellationToken.None);
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["FlashSale:MySql:ConnectionString"] = TestStack.MySql })
            .Build();
        _services = new ServiceCollection().AddLogging().AddFlashSaleOrderStore(configuration).BuildServiceProvider(validateScopes: true);
        Store = _services.GetRequiredService<MySqlOrderStore>();
        Committer = _services.GetRequiredService<GroupCommitter>();
        Metrics = _services.GetRequiredService<OrderStoreMetrics>();
    }

    public async Task DisposeAsync()
    {
        if (_services is not null)
        {
            await _services.DisposeAsync();
        }
    }
}

/// <summary>The MySQL persistence stage on the real MariaDB: group commit, idempotence, drift, retries.</summary>
public sealed partial class OrderStoreTests(OrderStoreFixture fixture, ITestOutputHelper output) : IClassFixture<OrderStoreFixture>
{
    private MySqlOrderStore Store => fixture.Store;
    private GroupCommitter Committer => fixture.Committer;

    private static DeductionRecord NewRecord(string sku, int quantity = 1, string? user = null) =>
        new("ord-" + Guid.NewGuid().ToString("N"), "req-" + Guid.NewGuid().ToString("N"), sku,
            user ?? "user-" + Random.Shared.Next(100_000), quantity, Random.Shared.Next(16), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());

    [Fact]
    public async Task Concurrent_producers_are_committed_in_far_fewer_transactions_than_orders()
    {
        const int Orders = 5_000;
        const int Producers = 64;
        const long Stock = 6_000;
        var sku = ClusterFixture.NewSku("group");
        await Store.EnsureInventoryAsync(sku, Stock);
        var records = Enumerable.Range(0, Orders).Select(_ => NewRecord(sku)).ToArray();
        var before = Store.CommittedTransactions;

        // Each producer waits for its record's group before it sends the next, as a queue consumer that acks would.
        await Task.WhenAll(Enumerable.Range(0, Producers).Select(p => Task.Run(async () =>
        {
            for (var i = p; i < Orders; i += Producers)
            {
                var result = await Committer.SubmitAsync(records[i]);
                Assert.True(result.Inserted >= 1 && result.Offered >= result.Inserted);
            }
        })));

        var transactions = Store.CommittedTransactions - before;
        var groups = await ScalarAsync("SELECT COUNT(DISTINCT commit_batch) FROM orders WHERE sku = @sku", sku);
        var largest = await ScalarAsync("SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM orders WHERE sku = @sku GROUP BY commit_batch) AS g", sku);
        output.WriteLine($"{Orders} orders from {Producers} producers: {transactions} transactions, {groups} groups stored, largest group {largest}");

        Assert.Equal(Orders, await ScalarAsync("SELECT COUNT(*) FROM orders WHERE sku = @sku", sku));
        Assert.Equal(Stock - Orders, await AvailableAsync(sku));
        Assert.Equal(Orders, await ScalarAsync("SELECT SUM(quantity) FROM orders WHERE sku = @sku", sku));
        // The order rows are the record of the deductions: the group writes no log row per order.
        Assert.Equal(0, await ScalarAsync("SELECT COUNT(*) FROM inventory_log WHERE sku = @sku", sku));
        Assert.Equal(transactions, groups);
        Assert.True(transactions < 500, $"{transactions} transactions for {Orders} orders");
        Assert.Equal(0, Committer.ActiveSkus);
    }

    [Fact]
    public async Task Redelivered_records_change_nothing()
    {
        var sku = ClusterFixture.NewSku("redeliver");
        await Store.EnsureInventoryAsync(sku, 1_000);
        var records = Enumerable.Range(0, 300).Select(i => NewRecord(sku, quantity: 1 + i % 3)).ToArray();
        var units = records.Sum(r => (long)r.Quantity);

        // Submitted together on an idle SKU, they form one group.
        var first = await Task.WhenAll(Committer.Submit(records));
        Assert.All(first, r => Assert.Equal(new GroupCommitResult(300, 300, units), r));
        var state = await SnapshotAsync(sku);
        Assert.Equal((300L, units, 1_000 - units, 0L), state);

        // The same records again, through the committer and straight through the store.
        var second = await Task.WhenAll(Committer.Submit(records));
        Assert.All(second, r => Assert.Equal(new GroupCommitResult(300, 0, 0), r));
        var direct = await Store.CommitGroupAsync(sku, records, CancellationToken.None);
        Assert.Equal(new GroupCommitResult(300, 0, 0), direct);
        Assert.Equal(state, await SnapshotAsync(sku));

        // Old and new mixed, and one order twice in the same group: only the new ones count, once.
        var fresh = NewRecord(sku, quantity: 5);
        var mixed = await Store.CommitGroupAsync(sku, [records[0], fresh, records[1], fresh], CancellationToken.None);
        Assert.Equal(new GroupCommitResult(4, 1, 5), mixed);
        Assert.Equal((301L, units + 5, 1_000 - units - 5, 0L), await SnapshotAsync(sku));
    }

    [Fact]
    public async Task A_failed_group_fails_every_caller_and_the_SKU_goes_on()
    {
        // A store that fails every transaction: the AliSQL flavour refuses a MariaDB server.
        var aliSql = new MySqlOrderStore(
            Options.Create(new OrderStoreOptions { ConnectionString = TestStack.MySql, Flavor = OrderStoreFlavor.AliSql }),
            fixture.Metrics, NullLogger<MySqlOrderStore>.Instance);
        var failing = new GroupCommitter(aliSql, Options.Create(new OrderStoreOptions { ConnectionString = TestStack.MySql }), NullLogger<GroupCommitter>.Instance);
        var sku = ClusterFixture.NewSku("group-fail");
        await Store.EnsureInventoryAsync(sku, 10);

        // Submitted together on an idle SKU, the three form one group.
        var calls = failing.Submit([NewRecord(sku, quantity: 4), NewRecord(sku, quantity: 4), NewRecord(sku, quantity: 4)]);
        var errors = new List<InvalidOperationException>();
        foreach (var call in calls)
        {
            errors.Add(await Assert.ThrowsAsync<InvalidOperationException>(() => call));
        }

        Assert.All(errors, e => Assert.Same(errors[0], e));
        Assert.Equal((0L, 0L, 10L, 0L), await SnapshotAsync(sku));
        // Its leader retires the SKU's lane after the failed group: nothing is left waiting.
        await TestDb.WaitUntilAsync(() => Task.FromResult(failing.ActiveSkus == 0), TimeSpan.FromSeconds(5));

        var next = await Committer.SubmitAsync(NewRecord(sku, quantity: 4));
        Assert.Equal(new GroupCommitResult(1, 1, 4), next);
        Assert.Equal(6, await AvailableAsync(sku));

        // A record the schema would refuse is turned away at the door and joins no group.
        Assert.Throws<ArgumentException>(() => { _ = Committer.SubmitAsync(NewRecord(sku, quantity: 0)); });
    }

    [Fact]
    public async Task Injection_strings_in_sku_and_user_id_are_stored_verbatim()
    {
        var sku = ClusterFixture.NewSku("'; DROP TABLE orders; --");
        const string User = "Robert'); DROP TABLE orders; -- \\' \" ` % _ ü 🙂";
        await Store.EnsureInventoryAsync(sku, 5);

        var shouting = NewRecord(sku, user: User.ToUpperInvariant());
        var result = await Store.CommitGroupAsync(sku, [NewRecord(sku, user: User), shouting], CancellationToken.None);
        Assert.Equal(new GroupCommitResult(2, 2, 2), result);

        await using var connection = new MySqlConnection(TestStack.MySql);
        await connection.OpenAsync();
        await using var command = new MySqlCommand("SELECT sku, user_id FROM orders WHERE sku = @sku AND user_id = @user", connection);
        command.Parameters.AddWithValue("@sku", sku);
        command.Parameters.AddWithValue("@user", User);
        await using (var reader = await command.ExecuteReaderAsync())
        {
            // utf8mb4_bin: the upper-case twin is another user.
            Assert.True(await reader.ReadAsync());
            Assert.Equal(sku, reader.GetString(0));
            Assert.Equal(User, reader.GetString(1));
            Assert.False(await reader.ReadAsync());
        }

        Assert.Equal(3, await AvailableAsync(sku));
        Assert.Equal(2, await ScalarAsync("SELECT COUNT(*) FROM orders WHERE sku = @sku", sku));
    }

    [Fact]
    public async Task AliSql_flavour_refuses_a_MariaDB_server()
    {
        // MariaDB reads the hint as a comment, so the UPDATE would never commit: the store must not try.
        var aliSql = new MySqlOrderStore(
            Options.Create(new OrderStoreOptions { ConnectionString = TestStack.MySql, Flavor = OrderStoreFlavor.AliSql }),
            fixture.Metrics, NullLogger<MySqlOrderStore>.Instance);
        var sku = ClusterFixture.NewSku("alisql");
        await aliSql.EnsureInventoryAsync(sku, 10);

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => aliSql.CommitGroupAsync(sku, [NewRecord(sku)], CancellationToken.None));
        Assert.Contains("FlashSale:OrderStore:Flavor", error.Message);
        Assert.Equal((0L, 0L, 10L, 0L), await SnapshotAsync(sku));
    }

    [Fact]
    public async Task A_second_group_of_the_same_SKU_inserts_while_the_first_holds_the_hot_row()
    {
        var sku = ClusterFixture.NewSku("overlap");
        await Store.EnsureInventoryAsync(sku, 100);

        // Another session holds the inventory row: the first group stops at its UPDATE with its orders inserted.
        await using var blocker = new MySqlConnection(TestStack.MySql);
        await blocker.OpenAsync();
        await using (var hold = new MySqlCommand("START TRANSACTION; SELECT available_stock FROM inventory WHERE sku = @sku FOR UPDATE", blocker))
        {
            hold.Parameters.AddWithValue("@sku", sku);
            await hold.ExecuteScalarAsync();
        }

        var first = Committer.SubmitAsync(NewRecord(sku, quantity: 3));
        var firstSession = await WaitForBlockedUpdateAsync(sku, except: null);

        // With CommitsPerSku = 2 (the default) the next group does not wait for the first COMMIT: it gets as far as
        // the UPDATE too. With one commit per SKU it would wait in the committer and this would time out.
        var second = Committer.SubmitAsync(NewRecord(sku, quantity: 4));
        var secondSession = await WaitForBlockedUpdateAsync(sku, except: firstSession);
        Assert.NotEqual(firstSession, secondSession);
        Assert.False(first.IsCompleted || second.IsCompleted);

        await using (var release = new MySqlCommand("ROLLBACK", blocker))
        {
            await release.ExecuteNonQueryAsync();
        }

        Assert.Equal(new GroupCommitResult(1, 1, 3), await first);
        Assert.Equal(new GroupCommitResult(1, 1, 4), await second);
        Assert.Equal((2L, 7L, 93L, 0L), await SnapshotAsync(sku));
        Assert.Equal(2, await ScalarAsync("SELECT COUNT(DISTINCT commit_batch) FROM orders WHERE sku = @sku", sku));
    }

    [Fact]
    public async Task A_connection_lost_mid_transaction_is_retried_and_counts_once()
    {
        var sku = ClusterFixture.NewSku("retry");
        await Store.EnsureInventoryAsync(sku, 100);
        var group = Enumerable.Range(0, 20).Select(_ => NewRecord(sku, quantity: 2)).ToArray();
        var retriesBefore = Store.Retries;

        // Another session holds the inventory row, so the group stops at its UPDATE with the orders inserted.
        await using var blocker = new MySqlConnection(TestStack.MySql);
        await blocker.OpenAsync();
        await using (var hold = new MySqlCommand("START TRANSACTION; SELECT available_stock FROM inventory WHERE sku = @sku FOR UPDATE", blocker))
        {
            hold.Parameters.AddWithValue("@sku", sku);
            await hold.ExecuteScalarAsync();
        }

        var commit = Store.CommitGroupAsync(sku, group, CancellationToken.None);
        var first = await WaitForBlockedUpdateAsync(sku, except: null);
        await using (var kill = new MySqlCommand($"KILL CONNECTION {first}", blocker))
        {
            await kill.ExecuteNonQueryAsync();
        }

        // The store reconnects and runs the group again (new batch id); it blocks on the same row again.
        var second = await WaitForBlockedUpdateAsync(sku, except: first);
        Assert.NotEqual(first, second);
        Assert.False(commit.IsCompleted);
        await using (var release = new MySqlCommand("ROLLBACK", blocker))
        {
            await release.ExecuteNonQueryAsync();
        }

        var result = await commit;
        Assert.Equal(new GroupCommitResult(20, 20, 40), result);
        Assert.True(Store.Retries > retriesBefore);
        Assert.Equal((20L, 40L, 60L, 0L), await SnapshotAsync(sku));
        Assert.Equal(1, await ScalarAsync("SELECT COUNT(DISTINCT commit_batch) FROM orders WHERE sku = @sku", sku));
    }

    [Fact]
    public async Task Schema_files_apply_again_without_error()
    {
        var migrator = OrderStoreFixture.Migrator();
        await migrator.ApplyAsync(CancellationToken.None);
        await migrator.ApplyAsync(CancellationToken.None);
        Assert.Contains(SchemaMigrator.Scripts(), s => s.Name == "V003__orders.sql");
        foreach (var table in new[] { "inventory", "orders", "inventory_log" })
        {
            Assert.Equal(1, await ScalarAsync("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = @table", ("@table", table)));
        }
    }

    [Fact]
    public async Task The_expiry_sweep_reads_one_sale_s_due_orders_through_an_index_range()
    {
        await OrderStoreFixture.Migrator().ApplyAsync(CancellationToken.None);
        await using var connection = new MySqlConnection(TestStack.MySql);
        await connection.OpenAsync();
        await using var command = new MySqlCommand("EXPLAIN " + OrderLifecycleStore.ExpiredOfSaleSql, connection);
        command.Parameters.AddWithValue("@sku", "any-sale");
        command.Parameters.AddWithValue("@cutoff", 1_000L);
        command.Parameters.AddWithValue("@afterMs", 500L);
        command.Parameters.AddWithValue("@afterId", "01a2");
        command.Parameters.AddWithValue("@limit", 500);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        // A range of the (sku, status, committed_at_ms) index, already in commit order: no scan of the sale's other
        // pending orders and no sort, however many there are.
        Assert.Equal("range", reader.GetString(reader.GetOrdinal("type")));
        Assert.Equal("ix_orders_sku_status_committed", reader.GetString(reader.GetOrdinal("key")));
        Assert.DoesNotContain("filesort", reader.IsDBNull(reader.GetOrdinal("Extra")) ? "" : reader.GetString(reader.GetOrdinal("Extra")), StringComparison.Ordinal);
        Assert.False(await reader.ReadAsync());
    }

    [Fact]
    public async Task The_group_sums_what_it_inserted_through_the_primary_key()
    {
        // No index on commit_batch any more: a plan other than primary-key look-ups would read the whole table once
        // per group transaction.
        await OrderStoreFixture.Migrator().ApplyAsync(CancellationToken.None);
        await using var connection = new MySqlConnection(TestStack.MySql);
        await connection.OpenAsync();
        await using var command = new MySqlCommand("EXPLAIN " + InventorySql.SumInserted(3), connection);
        for (var i = 0; i < 3; i++)
        {
            command.Parameters.AddWithValue("@o" + i, $"order-{i}");
        }

        command.Parameters.AddWithValue("@batch", "0123456789abcdef0123456789abcdef");
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal("range", reader.GetString(reader.GetOrdinal("type")));
        Assert.Equal("PRIMARY", reader.GetString(reader.GetOrdinal("key")));
        Assert.False(await reader.ReadAsync());
    }
}
