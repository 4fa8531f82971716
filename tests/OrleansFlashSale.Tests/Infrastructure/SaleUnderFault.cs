using System.Collections.Concurrent;
using System.Diagnostics;

namespace OrleansFlashSale.Tests;

/// <summary>
/// A sale bought out by 16 paced buyers while a fault strikes (shared by the fault suites). When a fifth of the stock
/// is sold, the fault runs while the buyers keep buying; a buyer without a definite answer replays the same request id
/// with backoff, as a real client would. The fault records what it means by "before" and "after" itself
/// (<see cref="UnitsBeforeFault"/>, <see cref="UnitsAfterFault"/>), since a stop and a restart mark different moments.
/// </summary>
public sealed class SaleUnderFault
{
    private static readonly TimeSpan AnswerDeadline = TimeSpan.FromSeconds(120);
    private readonly ClusterFixture _fixture;
    private long _longestCallMs;

    private SaleUnderFault(ClusterFixture fixture, SaleDefinition sale)
    {
        _fixture = fixture;
        Sale = sale;
    }

    public SaleDefinition Sale { get; }

    public SaleHistory History { get; } = new();

    /// <summary>Calls without a definite answer, by kind (Unavailable or the exception's type).</summary>
    public ConcurrentDictionary<string, int> Failures { get; } = new();

    public int Retries;

    public long UnitsBeforeFault { get; set; }

    public long UnitsAfterFault { get; set; }

    public long LongestCallMs => Interlocked.Read(ref _longestCallMs);

    public TimeSpan Elapsed { get; private set; }

    /// <param name="users">Buyers' user ids cycle through this many users.</param>
    /// <param name="thinkTime">Pause between one buyer's purchases: it paces the load so the sale outlasts the fault.</param>
    /// <param name="untilFifthSold">How long a fifth of the stock may take to sell.</param>
    /// <param name="untilSoldOut">How long the whole sale may take.</param>
    /// <param name="fault">Runs once a fifth is sold; null buys the sale out without one.</param>
    public static async Task<SaleUnderFault> RunAsync(ClusterFixture fixture, SaleDefinition sale, int users, TimeSpan thinkTime,
        TimeSpan untilFifthSold, TimeSpan untilSoldOut, Func<SaleUnderFault, Task>? fault)
    {
        var run = new SaleUnderFault(fixture, sale);
        var fifthSold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var soldOut = new CancellationTokenSource();
        var next = -1;

        async Task BuyerAsync()
        {
            while (!soldOut.IsCancellationRequested)
            {
                var j = Interlocked.Increment(ref next);
                var result = await run.BuyUntilDefiniteAsync($"u{j % users}", $"r{j}");
                if (result.Outcome == PurchaseOutcome.SoldOut)
                {
                    await soldOut.CancelAsync();
                }

                if (run.History.AcknowledgedUnits >= sale.Stock / 5)
                {
                    fifthSold.TrySetResult();
                }

                // Think time between a buyer's purchases: it paces the load, it does not wait for anything.
                await Task.Delay(thinkTime);
            }
        }

        var clock = Stopwatch.StartNew();
        var load = Task.WhenAll(Enumerable.Range(0, 16).Select(_ => Task.Run(BuyerAsync)));
        try
        {
            if (fault is not null)
            {
                await Task.WhenAny(fifthSold.Task, load).Unwrap().WaitAsync(untilFifthSold);
                Assert.True(fifthSold.Task.IsCompleted, "the sale ended before a fifth of the stock was sold");
                await fault(run);
            }

            await load.WaitAsync(untilSoldOut);
        }
        finally
        {
            // Also when the run failed: the buyers must not go on loading the cluster under later tests.
            await soldOut.CancelAsync();
        }

        run.Elapsed = clock.Elapsed;
        return run;
    }

    /// <summary>The answers and failed calls, for the test's output.</summary>
    public string Describe() =>
        $"{Retries} retries, answers {string.Join(", ", History.Outcomes.Select(o => $"{o.Key}={o.Value}"))}, " +
        $"failed calls {string.Join(", ", Failures.Select(f => $"{f.Key}={f.Value}"))}";

    private async Task<PurchaseResult> BuyUntilDefiniteAsync(string user, string requestId)
    {
        var deadline = Stopwatch.StartNew();
        var backoff = TimeSpan.FromMilliseconds(50);
        while (true)
        {
            var call = Stopwatch.StartNew();
            try
            {
                var result = await _fixture.BuyAsync(Sale, user, requestId);
                if (result.Outcome != PurchaseOutcome.Unavailable)
                {
                    History.Record(user, requestId, result);
                    return result;
                }

                Failures.AddOrUpdate(nameof(PurchaseOutcome.Unavailable), 1, (_, n) => n + 1);
            }
            catch (Exception ex) when (deadline.Elapsed < AnswerDeadline)
            {
                // The outcome is unknown (e.g. the call timed out while a service was down): replay the same request.
                Failures.AddOrUpdate(ex.GetType().Name, 1, (_, n) => n + 1);
            }
            finally
            {
                ObserveCall(call.ElapsedMilliseconds);
            }

            Assert.True(deadline.Elapsed < AnswerDeadline, $"no definite answer for {user}/{requestId} within {AnswerDeadline.TotalSeconds:F0} s");
            Interlocked.Increment(ref Retries);
            await Task.Delay(backoff);
            backoff = TimeSpan.FromMilliseconds(Math.Min(1000, backoff.TotalMilliseconds * 2));
        }
    }

    private void ObserveCall(long ms)
    {
        long seen;
        while (ms > (seen = Interlocked.Read(ref _longestCallMs))
               && Interlocked.CompareExchange(ref _longestCallMs, ms, seen) != seen)
        {
        }
    }
}
