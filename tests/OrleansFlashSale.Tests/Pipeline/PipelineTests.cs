using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using MySqlConnector;
using NATS.Client.Core;
using NATS.Client.JetStream;
using OrleansFlashSale.Messaging;
using OrleansFlashSale.Persistence;
using OrleansFlashSale.Pipeline;

namespace OrleansFlashSale.Tests;

/// <summary>
/// The order pipeline end to end on the real services: bucket grains → half message in JetStream → Redis commit →
/// Orleans stream → bridge → deductions stream → group commit into MariaDB.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class PipelineTests(ClusterFixture fixture)
{
    [Fact]
    public async Task A_bought_out_sale_reaches_MySQL_with_exactly_the_acknowledged_orders()
    {
        var sale = await fixture.CreateSaleAsync("pipe", stock: 5000, buckets: 16, perUserLimit: 5);
        var history = await fixture.BuyOutAsync(sale, users: 2000, requests: 8000);
        Assert.Equal(5000, history.AcknowledgedUnits);

        var stored = await WaitForOrdersAsync(sale.Sku, history.DistinctOrderIds, TimeSpan.FromSeconds(10));
        Assert.Equal(history.Orders.Select(o => o.OrderId).Order(), stored.Keys.Order());
        Assert.All(history.Orders, o => Assert.Equal(o.Quantity, stored[o.OrderId]));
        Assert.Equal((5000L, 0L), await InventoryAsync(sale.Sku));
        Assert.Equal(5000L, await ScalarAsync("SELECT SUM(quantity) FROM orders WHERE sku = @sku", sale.Sku));
        Assert.Equal(0L, await ScalarAsync("SELECT COUNT(*) FROM inventory_log WHERE sku = @sku", sale.Sku));

        // The bridge trims what it forwarded: the buckets' Redis logs end empty.
        var db = fixture.Redis.GetDatabase();
        await WaitUntilAsync(async () =>
        {
            var lengths = await Task.WhenAll(Enumerable.Range(0, 16).Select(b => db.StreamLengthAsync(OrleansFlashSale.Redis.RedisKeys.Log(sale.Sku, b))));
            return lengths.Sum() == 0;
        }, TimeSpan.FromSeconds(10));
        await fixture.AssertNoDriftAsync(sale.Sku);
    }

    [Fact]
    public async Task Orders_whose_commit_was_lost_after_the_Redis_commit_are_committed_by_the_check_back()
    {
        var sale = await fixture.CreateSaleAsync("pipe-lost", stock: 600, buckets: 4, perUserLimit: 3);
        // As if every silo died right after each Redis commit, before telling the bridge: every order of this
        // sale must then reach MySQL through the check-back alone.
        var faults = fixture.Cluster.Silos.Select(s => s.ServiceProvider.GetRequiredService<PipelineFaults>()).ToArray();
        var droppedBefore = faults.Sum(f => f.Dropped);
        foreach (var f in faults)
        {
            f.DropNextCommitEvents(int.MaxValue);
        }

        SaleHistory history;
        Dictionary<string, int> stored;
        try
        {
            history = await fixture.BuyOutAsync(sale, users: 300, requests: 900);
            Assert.Equal(600, history.AcknowledgedUnits);
            // Still dropping while MySQL fills: a bucket's last transactions close after the last answer, and their
            // commit events must not slip through either.
            stored = await WaitForOrdersAsync(sale.Sku, history.DistinctOrderIds, TimeSpan.FromSeconds(30));
        }
        finally
        {
            foreach (var f in faults)
            {
                f.DropNextCommitEvents(0);
            }
        }

        Assert.True(faults.Sum(f => f.Dropped) > droppedBefore, "the hook should have dropped commit events");
        Assert.Equal(history.Orders.Select(o => o.OrderId).Order(), stored.Keys.Order());
        Assert.Equal((600L, 0L), await InventoryAsync(sale.Sku));

        // The check-back trims what it committed from the buckets' logs, as the bridge does: nothing stays behind.
        var db = fixture.Redis.GetDatabase();
        await WaitUntilAsync(async () =>
        {
            var lengths = await Task.WhenAll(Enumerable.Range(0, 4).Select(b => db.StreamLengthAsync(OrleansFlashSale.Redis.RedisKeys.Log(sale.Sku, b))));
            return lengths.Sum() == 0;
        }, TimeSpan.FromSeconds(30));
        await fixture.AssertNoDriftAsync(sale.Sku);
    }

    [Fact]
    public async Task Messages_delivered_again_are_written_once()
    {
        var sale = await fixture.CreateSaleAsync("pipe-dup", stock: 200, buckets: 2, perUserLimit: 2);
        var history = await fixture.BuyOutAsync(sale, users: 150, requests: 300);
        await WaitForOrdersAsync(sale.Sku, history.DistinctOrderIds, TimeSpan.FromSeconds(10));

        // Publish every order twice more: once with its own message id (the broker drops it) and once under a new
        // id (the broker cannot know; the writer must).
        var nats = fixture.Cluster.Silos[0].ServiceProvider.GetRequiredService<JetStreamConnection>();
        var subject = nats.Topology.Deductions(sale.Sku);
        foreach (var order in history.Orders)
        {
            var record = new DeductionRecord(order.OrderId, order.RequestId, sale.Sku, order.UserId, order.Quantity, order.Bucket, 0);
            var message = PipelineJson.ToMessage(record, subject);
            await nats.JetStream.PublishAsync(subject, message.Payload.ToArray(), headers: new NatsHeaders { ["Nats-Msg-Id"] = order.OrderId });
            await nats.JetStream.PublishAsync(subject, message.Payload.ToArray(), headers: new NatsHeaders { ["Nats-Msg-Id"] = "again-" + order.OrderId });
        }

        // And all of them once more as one transaction's message, as the bridge and the check-back publish them.
        var records = history.Orders.Select(o => new DeductionRecord(o.OrderId, o.RequestId, sale.Sku, o.UserId, o.Quantity, o.Bucket, 0)).ToArray();
        var transaction = PipelineJson.ToTransactionMessage("again-tx-" + sale.Sku, records, subject);
        (await nats.JetStream.PublishAsync(subject, transaction.Payload.ToArray(), headers: new NatsHeaders { ["Nats-Msg-Id"] = transaction.MessageId })).EnsureSuccess();

        // The writer has caught up when its durable consumer has nothing pending or unacknowledged.
        await WaitUntilAsync(async () =>
        {
            var consumer = await nats.JetStream.GetConsumerAsync(nats.Topology.DeductionsStream, "orders-writer");
            return consumer.Info.NumPending == 0 && consumer.Info.NumAckPending == 0;
        }, TimeSpan.FromSeconds(15));

        Assert.Equal(history.DistinctOrderIds, await ScalarAsync("SELECT COUNT(*) FROM orders WHERE sku = @sku", sale.Sku));
        Assert.Equal((200L, 0L), await InventoryAsync(sale.Sku));
        Assert.Equal(200L, await ScalarAsync("SELECT SUM(quantity) FROM orders WHERE sku = @sku", sale.Sku));
        await fixture.AssertNoDriftAsync(sale.Sku);
    }

    [Fact]
    public async Task A_record_the_schema_refuses_is_dead_lettered_alone_and_the_rest_of_its_transaction_is_written()
    {
        var sale = await fixture.CreateSaleAsync("pipe-dlq", stock: 10, buckets: 1, perUserLimit: 1);
        var nats = fixture.Cluster.Silos[0].ServiceProvider.GetRequiredService<JetStreamConnection>();
        var subject = nats.Topology.Deductions(sale.Sku);
        var good = Enumerable.Range(0, 2).Select(i => new DeductionRecord(Guid.NewGuid().ToString("N"), $"ok{i}", sale.Sku, $"u{i}", 1, 0, 1)).ToArray();
        var bad = new DeductionRecord(Guid.NewGuid().ToString("N"), "bad", sale.Sku, "u9", Quantity: 0, Bucket: 0, CommittedAtMs: 1);
        // Written straight to the stream: this test is about the writer, so Redis never saw these orders and the
        // sale is not verified afterwards.
        var transaction = PipelineJson.ToTransactionMessage("dlq-tx-" + sale.Sku, [good[0], bad, good[1]], subject);
        (await nats.JetStream.PublishAsync(subject, transaction.Payload.ToArray(), headers: new NatsHeaders { ["Nats-Msg-Id"] = transaction.MessageId })).EnsureSuccess();

        var stored = await WaitForOrdersAsync(sale.Sku, 2, TimeSpan.FromSeconds(10));
        Assert.Equal(good.Select(r => r.OrderId).Order(), stored.Keys.Order());
        Assert.Equal((10L, 8L), await InventoryAsync(sale.Sku));

        // The refused record is in the dead-letter stream on its own, with the reason.
        var deadLetters = await nats.JetStream.GetStreamAsync(nats.Topology.DeadLetterStream);
        NATS.Client.JetStream.Models.StreamMsgGetResponse? last = null;
        await WaitUntilAsync(async () =>
        {
            await deadLetters.RefreshAsync();
            if (deadLetters.Info.State.Messages == 0)
            {
                return false;
            }

            last = await deadLetters.GetAsync(new NATS.Client.JetStream.Models.StreamMsgGetRequest { LastBySubj = nats.Topology.DeadLetter("orders") });
            return last.Message.Data is { } data && PipelineJson.ReadDeductions(data).Single().OrderId == bad.OrderId;
        }, TimeSpan.FromSeconds(10));
        Assert.Equal(bad, PipelineJson.ReadDeductions(last!.Message.Data!).Single());
        Assert.Contains("quantity 0", System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(last.Message.Hdrs!)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task On_a_drifted_row_only_the_orders_that_do_not_fit_are_dead_lettered_each_with_its_reason()
    {
        var sale = await fixture.CreateSaleAsync("pipe-drift", stock: 30, buckets: 3, perUserLimit: 10);
        var nats = fixture.Cluster.Silos[0].ServiceProvider.GetRequiredService<JetStreamConnection>();
        var subject = nats.Topology.Deductions(sale.Sku);
        // MySQL lost track of units Redis still sells (a restore, a hand edit): 6 left where Redis has 30.
        await using (var connection = new MySqlConnection(TestStack.MySql))
        {
            await connection.OpenAsync();
            await using var drift = new MySqlCommand("UPDATE inventory SET available_stock = 6 WHERE sku = @sku", connection);
            drift.Parameters.AddWithValue("@sku", sale.Sku);
            Assert.Equal(1, await drift.ExecuteNonQueryAsync());
        }

        // Three transactions of three buckets. The small orders take exactly the 6 units left, and each big one
        // alone takes more than that, so which orders fit does not depend on how the writers group the messages.
        DeductionRecord Order(string id, int quantity, int bucket) =>
            new($"{id}-{Guid.NewGuid():N}", "req-" + id, sale.Sku, "user-" + id, quantity, bucket, 1_000 + bucket);
        DeductionRecord[][] transactions =
        [
            [Order("a", 1, 0), Order("big1", 7, 0)],
            [Order("b", 2, 1), Order("c", 1, 1)],
            [Order("d", 2, 2), Order("big2", 9, 2)],
        ];
        var fit = transactions.SelectMany(t => t).Where(r => r.Quantity <= 2).ToArray();
        var refused = transactions.SelectMany(t => t).Where(r => r.Quantity > 2).ToArray();

        var writer = await SettledWriterAsync(nats);
        var stream = await nats.JetStream.GetStreamAsync(nats.Topology.DeductionsStream);
        var firstSequence = stream.Info.State.LastSeq + 1;
        for (var i = 0; i < transactions.Length; i++)
        {
            var message = PipelineJson.ToTransactionMessage($"drift-tx{i}-{sale.Sku}", transactions[i], subject);
            (await nats.JetStream.PublishAsync(subject, message.Payload.ToArray(), headers: new NatsHeaders { ["Nats-Msg-Id"] = message.MessageId })).EnsureSuccess();
        }

        var stored = await WaitForOrdersAsync(sale.Sku, fit.Length, TimeSpan.FromSeconds(10));
        Assert.Equal(fit.Select(r => r.OrderId).Order(), stored.Keys.Order());
        Assert.All(fit, r => Assert.Equal(r.Quantity, stored[r.OrderId]));
        Assert.Equal((30L, 0L), await InventoryAsync(sale.Sku));

        var deadLetters = await WaitForDeadLettersAsync(nats, sale.Sku, refused.Length, TimeSpan.FromSeconds(10));
        Assert.Equal(refused.Select(r => r.OrderId).Order(), deadLetters.Keys.Order());
        foreach (var record in refused)
        {
            var (payload, reason) = deadLetters[record.OrderId];
            Assert.Equal(record, payload);
            // What was left when the order was tried depends on which orders its group held: at most the 6 units.
            Assert.Matches(
                $"^Inventory drift for SKU '{Regex.Escape(sale.Sku)}': order '{Regex.Escape(record.OrderId)}' takes {record.Quantity} units but MySQL has [0-6] available after the orders before it that fit; the order was not stored\\.$",
                reason);
        }

        // Every message was delivered once and acknowledged: none was given back for redelivery.
        stream = await nats.JetStream.GetStreamAsync(nats.Topology.DeductionsStream);
        var published = stream.Info.State.LastSeq - firstSequence + 1;
        Assert.True(published >= (ulong)transactions.Length);
        var after = await SettledWriterAsync(nats);
        Assert.Equal(writer.Delivered.ConsumerSeq + published, after.Delivered.ConsumerSeq);

        // The transactions once more under new ids: the stored orders are not inserted again, the refused ones are
        // refused again and their dead letters are the same messages (JetStream drops the copies).
        for (var i = 0; i < transactions.Length; i++)
        {
            var message = PipelineJson.ToTransactionMessage($"drift-again-tx{i}-{sale.Sku}", transactions[i], subject);
            (await nats.JetStream.PublishAsync(subject, message.Payload.ToArray(), headers: new NatsHeaders { ["Nats-Msg-Id"] = message.MessageId })).EnsureSuccess();
        }

        await SettledWriterAsync(nats);
        Assert.Equal(stored, await TestDb.OrdersAsync(sale.Sku));
        Assert.Equal((30L, 0L), await InventoryAsync(sale.Sku));
        Assert.Equal(deadLetters.Keys.Order(), (await DeadLettersAsync(nats, sale.Sku)).Keys.Order());
        Assert.Equal(refused.Length, (await DeadLettersAsync(nats, sale.Sku)).Count);
    }

    [Fact]
    public async Task A_purchase_whose_Redis_calls_timed_out_gets_a_definite_answer_on_replay()
    {
        var sale = await fixture.CreateSaleAsync("pipe-timeout", stock: 10, buckets: 1, perUserLimit: 1);
        Assert.Equal(PurchaseOutcome.Created, (await fixture.BuyAsync(sale, "warm", "r")).Outcome);

        // Redis holds every write for longer than the 2 s command timeout, then runs them: outcomes are unknown to
        // the grains at the time they answer.
        var server = fixture.Redis.GetServers().Single();
        await server.ExecuteAsync("CLIENT", "PAUSE", "6000", "WRITE");
        var during = await fixture.BuyAsync(sale, "slow", "r");
        Assert.Equal(PurchaseOutcome.Unavailable, during.Outcome);

        // The buyer retries with the same request id until the answer is definite; it must be the one order.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        PurchaseResult replay;
        while ((replay = await fixture.BuyAsync(sale, "slow", "r")).Outcome == PurchaseOutcome.Unavailable)
        {
            Assert.True(DateTime.UtcNow < deadline, "no definite answer after the pause");
            await Task.Delay(200);
        }

        Assert.Contains(replay.Outcome, new[] { PurchaseOutcome.Created, PurchaseOutcome.Replayed });
        Assert.Equal(PurchaseOutcome.Replayed, (await fixture.BuyAsync(sale, "slow", "r")).Outcome);
        Assert.Equal(replay.Order!.OrderId, (await fixture.BuyAsync(sale, "slow", "r")).Order!.OrderId);
        Assert.Equal(8, (await fixture.RedisStockAsync(sale.Sku, 1)).Sum());

        // And the order reaches MySQL once, whichever path committed it.
        var orders = fixture.Client.GetGrain<IOrdersGrain>(0);
        await WaitUntilAsync(async () => (await orders.GetAsync(replay.Order.OrderId))?.Status == "pending_payment", TimeSpan.FromSeconds(20));
        Assert.Equal(2L, await ScalarAsync("SELECT COUNT(*) FROM orders WHERE sku = @sku", sale.Sku));
        await fixture.AssertNoDriftAsync(sale.Sku);
    }

    private static async Task<Dictionary<string, int>> WaitForOrdersAsync(string sku, int expected, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (true)
        {
            var orders = await TestDb.OrdersAsync(sku);
            if (orders.Count >= expected || DateTime.UtcNow > deadline)
            {
                Assert.True(orders.Count == expected, $"MySQL holds {orders.Count} orders of {sku}, expected {expected} within {within}");
                return orders;
            }

            await Task.Delay(100);
        }
    }

    /// <summary>The writer's durable consumer once it has nothing pending or unacknowledged.</summary>
    private static async Task<NATS.Client.JetStream.Models.ConsumerInfo> SettledWriterAsync(JetStreamConnection nats)
    {
        NATS.Client.JetStream.Models.ConsumerInfo info = null!;
        await WaitUntilAsync(async () =>
        {
            info = (await nats.JetStream.GetConsumerAsync(nats.Topology.DeductionsStream, "orders-writer")).Info;
            return info.NumPending == 0 && info.NumAckPending == 0;
        }, TimeSpan.FromSeconds(15));
        return info;
    }

    private static async Task<Dictionary<string, (DeductionRecord Record, string Reason)>> WaitForDeadLettersAsync(
        JetStreamConnection nats, string sku, int expected, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (true)
        {
            var found = await DeadLettersAsync(nats, sku);
            if (found.Count >= expected || DateTime.UtcNow > deadline)
            {
                Assert.True(found.Count == expected, $"{found.Count} dead letters of {sku}, expected {expected} within {within}");
                return found;
            }

            await Task.Delay(100);
        }
    }

    /// <summary>The dead letters of one SKU's orders: order id → (the record, the FlashSale-Reason header).</summary>
    private static async Task<Dictionary<string, (DeductionRecord Record, string Reason)>> DeadLettersAsync(JetStreamConnection nats, string sku)
    {
        var stream = await nats.JetStream.GetStreamAsync(nats.Topology.DeadLetterStream);
        var found = new Dictionary<string, (DeductionRecord, string)>();
        if (stream.Info.State.Messages == 0)
        {
            return found;
        }

        for (var sequence = stream.Info.State.FirstSeq; sequence <= stream.Info.State.LastSeq; sequence++)
        {
            var message = (await stream.GetAsync(new NATS.Client.JetStream.Models.StreamMsgGetRequest { Seq = sequence })).Message;
            // Other tests' dead letters may be whole messages, even unreadable ones; this SKU's are single orders.
            DeductionRecord[] records;
            try
            {
                records = PipelineJson.ReadDeductions(message.Data!);
            }
            catch (JsonException)
            {
                continue;
            }

            if (records is not [var record] || record.Sku != sku)
            {
                continue;
            }

            var headers = System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(message.Hdrs!));
            var reason = headers.Split("\r\n").Single(h => h.StartsWith("FlashSale-Reason: ", StringComparison.Ordinal))["FlashSale-Reason: ".Length..];
            Assert.True(found.TryAdd(record.OrderId, (record, reason)), $"order {record.OrderId} is dead-lettered twice");
        }

        return found;
    }

    private static async Task<(long Total, long Available)> InventoryAsync(string sku)
    {
        await using var connection = new MySqlConnection(TestStack.MySql);
        await connection.OpenAsync();
        await using var command = new MySqlCommand("SELECT total_stock, available_stock FROM inventory WHERE sku = @sku", connection);
        command.Parameters.AddWithValue("@sku", sku);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync(), $"no inventory row for {sku}");
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    private static Task<long> ScalarAsync(string sql, string sku) => TestDb.ScalarAsync(sql, ("@sku", sku));

    private static Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan within) => TestDb.WaitUntilAsync(condition, within);
}
