using Microsoft.Extensions.DependencyInjection;
using System.Text;
using NATS.Client.Core;
using NATS.Client.JetStream;
using OrleansFlashSale.Messaging;

namespace OrleansFlashSale.Tests.Messaging;

/// <summary>
/// Half message, commit and rollback on the real JetStream server. The timeout is long enough that the check-back
/// never checks here: only the producer resolves these transactions.
/// </summary>
public sealed class TransactionalProducerTests : IAsyncLifetime
{
    private static readonly TimeSpan NeverDue = TimeSpan.FromMinutes(1);
    private readonly string _prefix = MessagingHost.NewPrefix("TXP");
    private readonly ScriptedChecker _checker = new(_ => TransactionCheckResult.Unknown);

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => MessagingHost.DeleteStreamsAsync(_prefix);

    private static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);

    [Fact]
    public async Task Committed_messages_reach_deductions_consumers_once_and_the_half_is_removed()
    {
        await using var host = await MessagingHost.StartAsync(_prefix, _checker, NeverDue);
        var t = host.Topology;
        var half = await host.Producer.SendHalfAsync("tx-1", t.Deductions("sku-1"), Bytes("prepared"), default);
        Assert.Equal(1, await host.CountAsync(t.HalfStream));

        OutgoingMessage[] messages =
        [
            new("tx-1:0", t.Deductions("sku-1"), Bytes("deduct sku-1")),
            new("tx-1:1", t.Deductions("sku-2"), Bytes("deduct sku-2")),
        ];
        await host.Producer.CommitAsync(half, messages, default);
        Assert.Equal(0, await host.CountAsync(t.HalfStream));

        // A retried commit and a stray re-publish of the same id: JetStream keeps one copy.
        await host.Producer.CommitAsync(half, messages, default);
        var again = await host.JetStream.PublishAsync(t.Deductions("sku-1"), Bytes("deduct sku-1"), opts: new NatsJSPubOpts { MsgId = "tx-1:0" });
        Assert.True(again.Duplicate);

        var seen = await host.ReadUntilMarkerAsync(t.DeductionsStream, t.Deductions("marker"));
        Assert.Equal(["tx-1:0", "tx-1:1"], seen.Select(m => m.MessageId));
        Assert.Equal([t.Deductions("sku-1"), t.Deductions("sku-2")], seen.Select(m => m.Subject));
        Assert.Equal(["deduct sku-1", "deduct sku-2"], seen.Select(m => Encoding.UTF8.GetString(m.Payload)));
        Assert.All(seen, m => Assert.Equal("tx-1", m.TransactionId));
        Assert.Equal(0, await host.CountAsync(t.HalfStream));
        Assert.Equal(2, host.Metrics.Sum("flashsale.tx.resolved", "by", "producer"));
        Assert.Empty(_checker.Calls);
    }

    [Fact]
    public async Task Rolled_back_transaction_publishes_nothing_and_removes_the_half()
    {
        await using var host = await MessagingHost.StartAsync(_prefix, _checker, NeverDue);
        var t = host.Topology;
        var half = await host.Producer.SendHalfAsync("tx-2", t.Deductions("sku-1"), Bytes("prepared"), default);

        await host.Producer.RollbackAsync(half, default);
        // Rolling back what is already gone is not an error.
        await host.Producer.RollbackAsync(half, default);

        Assert.Equal(0, await host.CountAsync(t.HalfStream));
        Assert.Empty(await host.ReadUntilMarkerAsync(t.DeductionsStream, t.Deductions("marker")));
        Assert.Equal(2, host.Metrics.Sum("flashsale.tx.resolved", "outcome", "rollback"));
        Assert.Empty(_checker.Calls);
    }

    [Fact]
    public async Task Sending_one_transaction_twice_stores_one_half_message()
    {
        await using var host = await MessagingHost.StartAsync(_prefix, _checker, NeverDue);
        var t = host.Topology;
        var first = await host.Producer.SendHalfAsync("tx-3", t.Deductions("sku-1"), Bytes("prepared"), default);
        var retry = await host.Producer.SendHalfAsync("tx-3", t.Deductions("sku-1"), Bytes("prepared"), default);

        Assert.Equal(first.Receipt, retry.Receipt);
        Assert.Equal(1, await host.CountAsync(t.HalfStream));
    }

    [Fact]
    public async Task Half_messages_are_never_delivered_to_deductions_consumers()
    {
        await using var host = await MessagingHost.StartAsync(_prefix, _checker, NeverDue);
        var t = host.Topology;

        // A plain subscriber on every deductions subject, besides the stream's consumers.
        var heard = new List<string>();
        await using var subscription = await host.Nats.Connection.SubscribeCoreAsync<byte[]>(t.DeductionsSubjects);
        for (var i = 0; i < 3; i++)
        {
            await host.Producer.SendHalfAsync($"tx-h{i}", t.Deductions("sku-1"), Bytes($"prepared {i}"), default);
        }

        var seen = await host.ReadUntilMarkerAsync(t.DeductionsStream, t.Deductions("marker"));
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await foreach (var message in subscription.Msgs.ReadAllAsync(deadline.Token))
        {
            heard.Add(message.Subject);
            if (message.Subject == t.Deductions("marker"))
            {
                break;
            }
        }

        Assert.Empty(seen);
        Assert.Equal([t.Deductions("marker")], heard);
        Assert.Equal(3, await host.CountAsync(t.HalfStream));
        Assert.Equal(1, await host.CountAsync(t.DeductionsStream));
    }

    [Fact]
    public async Task Business_messages_cannot_use_half_subjects_or_wildcards()
    {
        await using var host = await MessagingHost.StartAsync(_prefix, _checker, NeverDue);
        var t = host.Topology;
        await Assert.ThrowsAsync<ArgumentException>(() => host.Producer.SendHalfAsync("tx-4", t.HalfSubject, Bytes("x"), default));
        await Assert.ThrowsAsync<ArgumentException>(() => host.Producer.SendHalfAsync("tx-4", t.Deductions("*"), Bytes("x"), default));
        await Assert.ThrowsAsync<ArgumentException>(() => host.Producer.SendHalfAsync("tx\r\n4", t.Deductions("sku"), Bytes("x"), default));

        var half = await host.Producer.SendHalfAsync("tx-4", t.Deductions("sku"), Bytes("x"), default);
        await Assert.ThrowsAsync<ArgumentException>(() =>
            host.Producer.CommitAsync(half, [new OutgoingMessage("tx-4:0", t.HalfSubject, Bytes("x"))], default));
        Assert.Equal(1, await host.CountAsync(t.HalfStream));
    }

    /// <summary>
    /// What verify counts: the half messages there now, overall and of one SKU, read without waiting for more (a
    /// half message removed after the count is not waited for).
    /// </summary>
    [Fact]
    public async Task The_queue_counts_the_half_messages_of_one_sku_among_others()
    {
        await using var host = await MessagingHost.StartAsync(_prefix, _checker, NeverDue);
        var t = host.Topology;
        var queue = host.Services.GetRequiredService<IPipelineQueue>();
        Assert.Equal((0, 0), Halves(await queue.CountAsync("sku-a", default)));

        byte[] Half(string sku) => OrleansFlashSale.Pipeline.PipelineJson.Serialize(
            new OrleansFlashSale.Pipeline.HalfPayload(sku, 0, [], OrleansFlashSale.Pipeline.HalfPayload.Epoch));
        await host.Producer.SendHalfAsync("tx-a1", t.Deductions("sku-a"), Half("sku-a"), default);
        await host.Producer.SendHalfAsync("tx-b1", t.Deductions("sku-b"), Half("sku-b"), default);
        var last = await host.Producer.SendHalfAsync("tx-a2", t.Deductions("sku-a"), Half("sku-a"), default);
        Assert.Equal((3, 2), Halves(await queue.CountAsync("sku-a", default)));
        Assert.Equal((3, 1), Halves(await queue.CountAsync("sku-b", default)));

        // The last one resolved: the stream's last sequence is now a removed message.
        await host.Producer.RollbackAsync(last, default);
        Assert.Equal((2, 1), Halves(await queue.CountAsync("sku-a", default)));
    }

    private static (long Total, long ForSku) Halves(PipelineMessageCounts counts) => (counts.HalfMessages, counts.HalfMessagesForSku);
}
