using System.Text;
using Microsoft.Extensions.Logging;
using OrleansFlashSale.Messaging;

namespace OrleansFlashSale.Tests.Messaging;

/// <summary>
/// The check-back on the real JetStream server, with short timings (timeout 1 s, interval 200 ms): a producer that
/// "crashed" after sending its half message never commits or rolls back, and the checker's answer decides.
/// </summary>
public sealed class TransactionCheckTests : IAsyncLifetime
{
    private readonly string _prefix = MessagingHost.NewPrefix("TXC");

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => MessagingHost.DeleteStreamsAsync(_prefix);

    private static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);

    private static OutgoingMessage DeductionOf(JetStreamTopology t, HalfMessage half) =>
        new($"{half.TransactionId}:0", t.Deductions("sku-1"), half.Payload);

    [Theory]
    [InlineData(TransactionState.Commit)]
    [InlineData(TransactionState.Rollback)]
    public async Task An_abandoned_half_message_is_resolved_as_the_checker_answers(TransactionState answer)
    {
        JetStreamTopology t = null!;
        var checker = new ScriptedChecker(half => answer == TransactionState.Commit
            ? TransactionCheckResult.Commit([DeductionOf(t, half)])
            : TransactionCheckResult.Rollback);
        await using var host = await MessagingHost.StartAsync(_prefix, checker);
        t = host.Topology;

        await host.Producer.SendHalfAsync("tx-abandoned", t.Deductions("sku-1"), Bytes("2 units"), default);

        // Counted once the half message is gone.
        await host.EventuallyAsync(() => Task.FromResult(host.Metrics.Sum("flashsale.tx.resolved", "by", "check") == 1), "the check-back resolves the half message");
        Assert.Equal(0, await host.CountAsync(t.HalfStream));

        var call = Assert.Single(checker.Calls);
        Assert.Equal("tx-abandoned", call.TransactionId);
        Assert.Equal(t.Deductions("sku-1"), call.Subject);
        Assert.Equal("2 units", Encoding.UTF8.GetString(call.Payload.Span));
        Assert.Equal(1, call.CheckCount);

        var seen = await host.ReadUntilMarkerAsync(t.DeductionsStream, t.Deductions("marker"));
        if (answer == TransactionState.Commit)
        {
            var message = Assert.Single(seen);
            Assert.Equal("tx-abandoned:0", message.MessageId);
            Assert.Equal("2 units", Encoding.UTF8.GetString(message.Payload));
            Assert.Equal(1, host.Metrics.Sum("flashsale.tx.resolved", "outcome", "commit"));
        }
        else
        {
            Assert.Empty(seen);
            Assert.Equal(1, host.Metrics.Sum("flashsale.tx.resolved", "outcome", "rollback"));
        }

        Assert.Equal(0, await host.CountAsync(t.CheckMaxStream));
    }

    [Fact]
    public async Task A_half_message_resolved_by_its_producer_in_time_is_never_checked()
    {
        var checker = new ScriptedChecker(_ => TransactionCheckResult.Unknown);
        await using var host = await MessagingHost.StartAsync(_prefix, checker, transactionTimeout: TimeSpan.FromSeconds(2));
        var t = host.Topology;
        var committed = await host.Producer.SendHalfAsync("tx-fast", t.Deductions("sku-1"), Bytes("1 unit"), default);
        var rolledBack = await host.Producer.SendHalfAsync("tx-fast-rb", t.Deductions("sku-1"), Bytes("1 unit"), default);
        await host.Producer.CommitAsync(committed, [new OutgoingMessage("tx-fast:0", t.Deductions("sku-1"), Bytes("1 unit"))], default);
        await host.Producer.RollbackAsync(rolledBack, default);

        // A half message abandoned after those two is checked: once it has been, theirs would have been too.
        await host.Producer.SendHalfAsync("tx-late", t.Deductions("sku-1"), Bytes("1 unit"), default);
        await host.EventuallyAsync(() => Task.FromResult(checker.Calls.Any(c => c.TransactionId == "tx-late")), "the later half message is checked");

        Assert.DoesNotContain(checker.Calls, c => c.TransactionId.StartsWith("tx-fast", StringComparison.Ordinal));
        var consumer = await host.JetStream.GetConsumerAsync(t.HalfStream, t.CheckConsumer);
        Assert.Equal(TimeSpan.FromSeconds(2), consumer.Info.Config.AckWait);
    }

    [Fact]
    public async Task A_half_message_still_unknown_after_max_checks_moves_to_checkmax()
    {
        var checker = new ScriptedChecker(_ => TransactionCheckResult.Unknown);
        await using var host = await MessagingHost.StartAsync(_prefix, checker, maxChecks: 3);
        var t = host.Topology;

        await host.Producer.SendHalfAsync("tx-stuck", t.Deductions("sku-9"), Bytes("3 units"), default);
        // Counted last: once the copy is stored, the half message deleted and the error logged.
        await host.EventuallyAsync(() => Task.FromResult(host.Metrics.Sum("flashsale.tx.check_max", "reason", CheckMaxReasons.Unknown) == 1), "the half message is moved to CHECKMAX");
        Assert.Equal(0, await host.CountAsync(t.HalfStream));
        Assert.Equal(1, await host.CountAsync(t.CheckMaxStream));

        var copy = Assert.Single(await host.ReadUntilMarkerAsync(t.CheckMaxStream, $"{_prefix}.checkmax.marker"));
        Assert.Equal("tx-stuck", copy.TransactionId);
        Assert.Equal(t.Deductions("sku-9"), copy.Header(TransactionHeaders.Subject));
        Assert.Equal("3", copy.Header(TransactionHeaders.CheckCount));
        Assert.Equal(CheckMaxReasons.Unknown, copy.Header(TransactionHeaders.Reason));
        Assert.Equal("3 units", Encoding.UTF8.GetString(copy.Payload));

        Assert.Equal([1, 2, 3], checker.Calls.Select(c => c.CheckCount));
        Assert.Contains(host.Logs.Entries, e => e.Level == LogLevel.Error && e.Event.Id == 2001 && e.Message.Contains("tx-stuck"));
        Assert.Empty(await host.ReadUntilMarkerAsync(t.DeductionsStream, t.Deductions("marker")));
    }

    [Fact]
    public async Task A_failing_checker_counts_as_unknown_and_is_asked_again()
    {
        JetStreamTopology t = null!;
        var checker = new ScriptedChecker(half => half.CheckCount == 1
            ? throw new InvalidOperationException("Redis is away")
            : TransactionCheckResult.Commit([DeductionOf(t, half)]));
        await using var host = await MessagingHost.StartAsync(_prefix, checker);
        t = host.Topology;

        await host.Producer.SendHalfAsync("tx-flaky", t.Deductions("sku-1"), Bytes("1 unit"), default);
        await host.EventuallyAsync(() => Task.FromResult(host.Metrics.Sum("flashsale.tx.resolved", "by", "check") == 1), "the second check commits");

        Assert.Equal([1, 2], checker.Calls.Select(c => c.CheckCount));
        Assert.Equal(["tx-flaky:0"], (await host.ReadUntilMarkerAsync(t.DeductionsStream, t.Deductions("marker"))).Select(m => m.MessageId));
        Assert.Equal(1, host.Metrics.Sum("flashsale.tx.checks", "state", "failed"));
        Assert.Contains(host.Logs.Entries, e => e.Level == LogLevel.Warning && e.Event.Id == 2002 && e.Message.Contains("tx-flaky"));
    }

    /// <summary>
    /// A checker that cannot answer (its store down, or loading its data after a restart) for more checks than
    /// MaxChecks allows is asked again until it answers: a failed check is not an answer, and giving up would strand
    /// a transaction that may have committed.
    /// </summary>
    [Fact]
    public async Task A_checker_failing_more_often_than_MaxChecks_is_asked_until_it_answers()
    {
        JetStreamTopology t = null!;
        var checker = new ScriptedChecker(half => half.CheckCount <= 4
            ? throw new TimeoutException("Redis is loading its data")
            : TransactionCheckResult.Commit([DeductionOf(t, half)]));
        await using var host = await MessagingHost.StartAsync(_prefix, checker, maxChecks: 2);
        t = host.Topology;

        await host.Producer.SendHalfAsync("tx-outage", t.Deductions("sku-1"), Bytes("1 unit"), default);
        await host.EventuallyAsync(() => Task.FromResult(host.Metrics.Sum("flashsale.tx.resolved", "by", "check") == 1), "the fifth check commits");

        Assert.Equal([1, 2, 3, 4, 5], checker.Calls.Select(c => c.CheckCount));
        Assert.Equal(4, host.Metrics.Sum("flashsale.tx.checks", "state", "failed"));
        Assert.Equal(["tx-outage:0"], (await host.ReadUntilMarkerAsync(t.DeductionsStream, t.Deductions("marker"))).Select(m => m.MessageId));
        Assert.Equal(0, await host.CountAsync(t.CheckMaxStream));
        Assert.Equal(0, await host.CountAsync(t.HalfStream));
    }

    [Fact]
    public async Task A_half_message_the_checker_can_never_answer_moves_to_checkmax_at_its_first_check()
    {
        var checker = new ScriptedChecker(half => throw new InvalidHalfMessageException($"{half.TransactionId}: not a bucket's payload"));
        await using var host = await MessagingHost.StartAsync(_prefix, checker, maxChecks: 5);
        var t = host.Topology;

        await host.Producer.SendHalfAsync("tx-garbled", t.Deductions("sku-1"), Bytes("{not json"), default);
        await host.EventuallyAsync(() => Task.FromResult(host.Metrics.Sum("flashsale.tx.check_max", "reason", CheckMaxReasons.Malformed) == 1), "the half message is moved to CHECKMAX");

        Assert.Equal(0, await host.CountAsync(t.HalfStream));
        var copy = Assert.Single(await host.ReadUntilMarkerAsync(t.CheckMaxStream, $"{_prefix}.checkmax.marker"));
        Assert.Equal(CheckMaxReasons.Malformed, copy.Header(TransactionHeaders.Reason));
        Assert.Equal("1", copy.Header(TransactionHeaders.CheckCount));
        Assert.Equal("{not json", Encoding.UTF8.GetString(copy.Payload));
        Assert.Single(checker.Calls);
        Assert.Equal(1, host.Metrics.Sum("flashsale.tx.checks", "state", "invalid"));
        Assert.Contains(host.Logs.Entries, e => e.Level == LogLevel.Error && e.Event.Id == 2015 && e.Message.Contains("tx-garbled"));
    }

    [Fact]
    public async Task Two_check_services_share_the_half_messages_and_never_check_one_at_once()
    {
        JetStreamTopology t = null!;
        var checker = new ScriptedChecker(half => TransactionCheckResult.Commit([DeductionOf(t, half) with { Subject = t.Deductions(half.TransactionId) }]));
        // Exclusive only while a check finishes within the ack wait (the timeout): 3 s leaves a loaded machine room.
        await using var first = await MessagingHost.StartAsync(_prefix, checker, transactionTimeout: TimeSpan.FromSeconds(3));
        await using var second = await MessagingHost.StartAsync(_prefix, checker, transactionTimeout: TimeSpan.FromSeconds(3));
        t = first.Topology;

        var ids = Enumerable.Range(0, 12).Select(i => $"tx-shared-{i}").ToArray();
        foreach (var id in ids)
        {
            await first.Producer.SendHalfAsync(id, t.Deductions(id), Bytes(id), default);
        }

        long Resolved() => first.Metrics.Sum("flashsale.tx.resolved", "by", "check") + second.Metrics.Sum("flashsale.tx.resolved", "by", "check");
        await first.EventuallyAsync(() => Task.FromResult(Resolved() >= ids.Length), "all half messages are resolved");
        Assert.Equal(0, await first.CountAsync(t.HalfStream));

        var seen = await first.ReadUntilMarkerAsync(t.DeductionsStream, t.Deductions("marker"));
        Assert.Equal(ids.Order(), seen.Select(m => m.TransactionId!).Order());
        Assert.Equal(0, checker.Overlaps);
    }

    [Fact]
    public async Task Stopping_in_the_middle_of_a_check_is_clean_and_another_process_takes_the_message_over()
    {
        var checking = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var slow = new ScriptedChecker(_ => TransactionCheckResult.Rollback)
        {
            Before = async (_, ct) =>
            {
                checking.TrySetResult();
                await Task.Delay(Timeout.Infinite, ct);
            },
        };
        var host = await MessagingHost.StartAsync(_prefix, slow, transactionTimeout: TimeSpan.FromSeconds(2));
        var t = host.Topology;
        await host.Producer.SendHalfAsync("tx-handover", t.Deductions("sku-1"), Bytes("1 unit"), default);
        await checking.Task.WaitAsync(TimeSpan.FromSeconds(30));

        var service = host.CheckService;
        await host.DisposeAsync();
        Assert.True(service.ExecuteTask!.IsCompletedSuccessfully, $"check-back ended {service.ExecuteTask.Status}");
        Assert.DoesNotContain(host.Logs.Entries, e => e.Level >= LogLevel.Error && e.Category.StartsWith("OrleansFlashSale", StringComparison.Ordinal));

        var checker = new ScriptedChecker(_ => TransactionCheckResult.Rollback);
        await using var next = await MessagingHost.StartAsync(_prefix, checker, transactionTimeout: TimeSpan.FromSeconds(2));
        await next.EventuallyAsync(() => Task.FromResult(next.Metrics.Sum("flashsale.tx.resolved", "by", "check") == 1), "the next process rolls it back");
        Assert.Equal(0, await next.CountAsync(t.HalfStream));
        Assert.Equal("tx-handover", Assert.Single(checker.Calls).TransactionId);
    }
}
