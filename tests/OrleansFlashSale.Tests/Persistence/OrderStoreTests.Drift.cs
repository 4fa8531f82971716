using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using MySqlConnector;
using OrleansFlashSale.Grains;
using OrleansFlashSale.Persistence;
using Xunit.Abstractions;

namespace OrleansFlashSale.Tests;

/// <summary>Groups MySQL has too little stock for: the orders that fit are stored, only the rest refused.</summary>
public sealed partial class OrderStoreTests
{
    [Fact]
    public async Task A_drifted_group_stores_the_orders_that_fit_and_refuses_only_the_rest()
    {
        var sku = ClusterFixture.NewSku("drift");
        await Store.EnsureInventoryAsync(sku, 100);
        await Store.EnsureInventoryAsync(sku, 999); // exists already: left alone
        var old = Order(sku, "old", 3, bucket: 0, committedAtMs: 900);
        Assert.Equal(new GroupCommitResult(1, 1, 3), await Store.CommitGroupAsync(sku, [old], CancellationToken.None));
        // MySQL lost track of units Redis sold (a restore, a hand edit): 9 left where 97 should be.
        await SetAvailableAsync(sku, 9);

        // Three transactions of three buckets in one group, with an order stored before (a redelivery) and one
        // twice. In commit order the new ones take 2, 4, 5, 2, 1, 2 units: 16 against 9.
        DeductionRecord[] first = [Order(sku, "o1", 2, 0, 1_000), Order(sku, "o2", 2, 0, 1_003)];
        DeductionRecord[] second = [Order(sku, "o3", 4, 1, 1_001), Order(sku, "o4", 1, 1, 1_004)];
        DeductionRecord[] third = [Order(sku, "o5", 5, 2, 1_002), old, Order(sku, "o6", 2, 2, 1_005)];
        DeductionRecord[] group = [.. first, .. second, .. third, second[0]];
        var (o1, o2, o3, o4, o5, o6) = (first[0], first[1], second[0], second[1], third[0], third[2]);

        // o1 (7 left), o3 (3 left); o5 does not fit the 3; o2 (1 left), o4 (0 left); o6 does not fit.
        var result = await Store.CommitGroupAsync(sku, group, CancellationToken.None);
        Assert.Equal(new GroupCommitResult(8, 4, 9) { Refused = [new(o5, 3), new(o6, 0)] }, result);
        var stored = new Dictionary<string, int> { [old.OrderId] = 3, [o1.OrderId] = 2, [o2.OrderId] = 2, [o3.OrderId] = 4, [o4.OrderId] = 1 };
        Assert.Equal(stored, await TestDb.OrdersAsync(sku));
        Assert.Equal((5L, 12L, 0L, 0L), await SnapshotAsync(sku));
        // One transaction stored the four that fit.
        Assert.Equal(2, await ScalarAsync("SELECT COUNT(DISTINCT commit_batch) FROM orders WHERE sku = @sku", sku));

        // The same group again, as a redelivery brings it: the stored ones are duplicates, the others refused again.
        var again = await Store.CommitGroupAsync(sku, group, CancellationToken.None);
        Assert.Equal(new GroupCommitResult(8, 0, 0) { Refused = [new(o5, 0), new(o6, 0)] }, again);
        Assert.Equal(stored, await TestDb.OrdersAsync(sku));
        Assert.Equal((5L, 12L, 0L, 0L), await SnapshotAsync(sku));

        // Once the row is put right, the refused orders go in like any other, once.
        await SetAvailableAsync(sku, 7);
        Assert.Equal(new GroupCommitResult(8, 2, 7), await Store.CommitGroupAsync(sku, group, CancellationToken.None));
        Assert.Equal((7L, 19L, 0L, 0L), await SnapshotAsync(sku));

        // A SKU MySQL has never heard of refuses every order, and stores nothing.
        var unknown = ClusterFixture.NewSku("drift-unknown");
        DeductionRecord[] lost = [Order(unknown, "late", 1, 0, 2_000), Order(unknown, "early", 1, 0, 1_000)];
        var missing = await Store.CommitGroupAsync(unknown, lost, CancellationToken.None);
        Assert.Equal(new GroupCommitResult(2, 0, 0) { Refused = [new(lost[1], null), new(lost[0], null)] }, missing);
        Assert.Equal(0, await ScalarAsync("SELECT COUNT(*) FROM orders WHERE sku = @sku", unknown));
    }

    [Fact]
    public async Task A_drifted_group_of_several_messages_fails_only_the_callers_of_the_orders_that_do_not_fit()
    {
        var sku = ClusterFixture.NewSku("drift-group");
        await Store.EnsureInventoryAsync(sku, 100);
        var busy = new[] { Order(sku, "busy1", 1, 3, 1), Order(sku, "busy2", 1, 3, 2) };
        await Store.CommitGroupAsync(sku, busy, CancellationToken.None);

        // Another session locks the two stored orders and, in the same transaction, lowers the stock by hand.
        await using var blocker = new MySqlConnection(TestStack.MySql);
        await blocker.OpenAsync();
        await using (var hold = new MySqlCommand(
            "START TRANSACTION; SELECT order_id FROM orders WHERE order_id IN (@b1, @b2) FOR UPDATE; UPDATE inventory SET available_stock = 9 WHERE sku = @sku", blocker))
        {
            hold.Parameters.AddWithValue("@b1", busy[0].OrderId);
            hold.Parameters.AddWithValue("@b2", busy[1].OrderId);
            hold.Parameters.AddWithValue("@sku", sku);
            await hold.ExecuteNonQueryAsync();
        }

        // Both leaders of the SKU (CommitsPerSku = 2) wait on those rows, so three messages submitted now, from three
        // buckets, are collected into one group.
        var redelivered = Committer.SubmitAsync(busy[0]);
        await WaitForLockWaitAsync(busy[0].OrderId);
        var redeliveredToo = Committer.SubmitAsync(busy[1]);
        await WaitForLockWaitAsync(busy[1].OrderId);
        DeductionRecord[][] messages =
        [
            [Order(sku, "o1", 2, 0, 1_000), Order(sku, "o2", 2, 0, 1_003)],
            [Order(sku, "o3", 4, 1, 1_001), Order(sku, "o4", 1, 1, 1_004)],
            [Order(sku, "o5", 5, 2, 1_002), Order(sku, "o6", 2, 2, 1_005)],
        ];
        var calls = messages.Select(m => Committer.Submit(m)).ToArray();
        await using (var release = new MySqlCommand("COMMIT", blocker))
        {
            await release.ExecuteNonQueryAsync();
        }

        Assert.Equal(new GroupCommitResult(1, 0, 0), await redelivered);
        Assert.Equal(new GroupCommitResult(1, 0, 0), await redeliveredToo);
        var (o5, o6) = (messages[2][0], messages[2][1]);
        var expected = new GroupCommitResult(6, 4, 9) { Refused = [new(o5, 3), new(o6, 0)] };
        foreach (var (record, call) in messages.SelectMany((m, i) => m.Zip(calls[i])))
        {
            if (record == o5 || record == o6)
            {
                var drift = await Assert.ThrowsAsync<InventoryDriftException>(() => call);
                var left = record == o5 ? 3L : 0L;
                Assert.Equal((sku, record.OrderId, (long)record.Quantity, (long?)left), (drift.Sku, drift.OrderId, drift.Units, drift.Available));
                Assert.Equal($"Inventory drift for SKU '{sku}': order '{record.OrderId}' takes {record.Quantity} units but MySQL has {left} available after the orders before it that fit; the order was not stored.", drift.Message);
            }
            else
            {
                Assert.Equal(expected, await call);
            }
        }

        var fit = new[] { messages[0][0], messages[0][1], messages[1][0], messages[1][1] };
        Assert.Equal(busy.Concat(fit).ToDictionary(r => r.OrderId, r => r.Quantity), await TestDb.OrdersAsync(sku));
        Assert.Equal((6L, 11L, 0L, 0L), await SnapshotAsync(sku));
        // The orders of the three messages that fit were stored by one transaction.
        Assert.Equal(1, await ScalarAsync(
            "SELECT COUNT(DISTINCT commit_batch) FROM orders WHERE sku = @sku AND order_id NOT IN (@b1, @b2)",
            ("@sku", sku), ("@b1", busy[0].OrderId), ("@b2", busy[1].OrderId)));
    }
}
