using OrleansFlashSale.ClientLibrary;

namespace OrleansFlashSale.UnitTests;

/// <summary>
/// The client library's coalescing, without a cluster: the "grain call" is a function the test controls, so it can
/// hold a call open and see what the next one carries.
/// </summary>
public sealed class PurchaseLaneTests
{
    private static PurchaseRequest Request(int i) => new("sku", $"u{i}", $"r{i}", 1);

    private static PurchaseReply Reply(PurchaseRequest r) => new(PurchaseOutcome.Created, "o-" + r.RequestId, 1, 0, null);

    [Fact]
    public async Task Purchases_arriving_while_a_call_is_out_leave_together_in_the_next_call_and_each_gets_its_own_answer()
    {
        var calls = new List<PurchaseRequest[]>();
        var first = new TaskCompletionSource();
        var lane = new PurchaseLane(async requests =>
        {
            lock (calls)
            {
                calls.Add(requests);
            }

            if (calls.Count == 1)
            {
                await first.Task;
            }

            return requests.Select(Reply).ToArray();
        }, maxBatch: 256, callsInFlight: 1, failed: (_, _) => { });

        var answers = new List<Task<PurchaseReply>> { lane.PurchaseAsync(Request(0)) };
        answers.AddRange(Enumerable.Range(1, 99).Select(i => lane.PurchaseAsync(Request(i))));
        first.SetResult();
        var replies = await Task.WhenAll(answers);

        Assert.Equal(2, calls.Count);
        Assert.Single(calls[0]);
        Assert.Equal(99, calls[1].Length);
        Assert.Equal(Enumerable.Range(0, 100).Select(i => "o-r" + i), replies.Select(r => r.OrderId));
    }

    [Fact]
    public async Task A_call_carries_at_most_the_batch_limit()
    {
        var sizes = new List<int>();
        var hold = new TaskCompletionSource();
        var lane = new PurchaseLane(async requests =>
        {
            lock (sizes)
            {
                sizes.Add(requests.Length);
            }

            await hold.Task;
            return requests.Select(Reply).ToArray();
        }, maxBatch: 10, callsInFlight: 2, failed: (_, _) => { });

        var answers = Enumerable.Range(0, 45).Select(i => lane.PurchaseAsync(Request(i))).ToArray();
        hold.SetResult();
        await Task.WhenAll(answers);

        Assert.All(sizes, n => Assert.InRange(n, 1, 10));
        Assert.Equal(45, sizes.Sum());
    }

    [Fact]
    public async Task A_failed_call_answers_each_of_its_purchases_unavailable_and_the_lane_goes_on()
    {
        var failures = new List<int>();
        var calls = 0;
        var lane = new PurchaseLane(requests => Interlocked.Increment(ref calls) == 1
                ? Task.FromException<PurchaseReply[]>(new TimeoutException("no answer"))
                : Task.FromResult(requests.Select(Reply).ToArray()),
            maxBatch: 256, callsInFlight: 1, failed: (_, count) => failures.Add(count));

        var failed = await lane.PurchaseAsync(Request(0));
        Assert.Equal(PurchaseOutcome.Unavailable, failed.Outcome);
        Assert.Null(failed.OrderId);
        Assert.Contains("same requestId", failed.Detail);
        Assert.Equal([1], failures);

        Assert.Equal(PurchaseOutcome.Created, (await lane.PurchaseAsync(Request(1))).Outcome);
    }

    [Fact]
    public async Task An_answer_count_that_does_not_match_is_a_failed_call_not_a_wrong_answer()
    {
        var lane = new PurchaseLane(_ => Task.FromResult(Array.Empty<PurchaseReply>()), maxBatch: 256, callsInFlight: 1, failed: (_, _) => { });
        Assert.Equal(PurchaseOutcome.Unavailable, (await lane.PurchaseAsync(Request(0))).Outcome);
    }
}
