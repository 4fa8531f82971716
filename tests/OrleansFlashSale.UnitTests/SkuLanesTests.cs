using OrleansFlashSale.Persistence;

namespace OrleansFlashSale.UnitTests;

/// <summary>
/// The per-SKU leader/follower grouping that the group committer and the database deductor share, without a
/// database: the "transaction" is a function the test controls, so it can hold a group open and see what the next
/// one carries.
/// </summary>
public sealed class SkuLanesTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Items_arriving_while_a_group_runs_go_next_in_arrival_order_in_groups_of_at_most_the_limit()
    {
        var run = new FirstGroupHeld();
        var lanes = new SkuLanes<int, int>(maxGroupSize: 40, leadersPerSku: 1, run.RunAsync);

        var answers = new List<Task<int>> { lanes.Enqueue("a", 0) };
        await run.FirstStarted.Task.WaitAsync(Patience);
        answers.AddRange(Enumerable.Range(1, 99).Select(i => lanes.Enqueue("a", i)));
        run.Release.SetResult();
        var results = await Task.WhenAll(answers).WaitAsync(Patience);

        Assert.Equal([1, 40, 40, 19], run.Groups.Select(g => g.Length));
        Assert.Equal(Enumerable.Range(0, 100), run.Groups.SelectMany(g => g));
        Assert.Equal(Enumerable.Range(0, 100).Select(i => i * 10), results);
        await WaitUntilAsync(() => lanes.ActiveSkus == 0);
    }

    [Fact]
    public async Task A_group_that_throws_fails_every_caller_of_that_group_and_the_next_group_still_runs()
    {
        var firstStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var failure = new InvalidOperationException("the transaction failed");
        var groups = 0;
        var lanes = new SkuLanes<int, int>(maxGroupSize: 100, leadersPerSku: 1, async (sku, group) =>
        {
            switch (Interlocked.Increment(ref groups))
            {
                case 1:
                    firstStarted.SetResult();
                    await release.Task;
                    group[0].Completion.SetResult(1);
                    break;
                case 2:
                    // Answers one caller, then fails: the others of the group get the failure.
                    group[0].Completion.SetResult(2);
                    throw failure;
                default:
                    foreach (var entry in group)
                    {
                        entry.Completion.SetResult(3);
                    }

                    break;
            }
        });

        var first = lanes.Enqueue("a", 0);
        await firstStarted.Task.WaitAsync(Patience);
        var second = Enumerable.Range(1, 5).Select(i => lanes.Enqueue("a", i)).ToArray();
        release.SetResult();

        Assert.Equal(1, await first.WaitAsync(Patience));
        Assert.Equal(2, await second[0].WaitAsync(Patience));
        foreach (var task in second[1..])
        {
            Assert.Same(failure, await Assert.ThrowsAsync<InvalidOperationException>(() => task.WaitAsync(Patience)));
        }

        Assert.Equal(3, await lanes.Enqueue("a", 6).WaitAsync(Patience));
    }

    [Fact]
    public async Task A_sku_runs_at_most_its_leaders_groups_at_once_and_skus_run_side_by_side()
    {
        var running = new Dictionary<string, int>();
        var most = new Dictionary<string, int>();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var lanes = new SkuLanes<int, int>(maxGroupSize: 1, leadersPerSku: 2, async (sku, group) =>
        {
            lock (running)
            {
                running[sku] = running.GetValueOrDefault(sku) + 1;
                most[sku] = Math.Max(most.GetValueOrDefault(sku), running[sku]);
            }

            await release.Task;
            lock (running)
            {
                running[sku]--;
            }

            group[0].Completion.SetResult(group[0].Item);
        });

        var answers = new[] { "a", "b" }.SelectMany(sku => Enumerable.Range(0, 10).Select(i => lanes.Enqueue(sku, i))).ToArray();
        await WaitUntilAsync(() =>
        {
            lock (running)
            {
                return running.GetValueOrDefault("a") == 2 && running.GetValueOrDefault("b") == 2;
            }
        });
        release.SetResult();
        await Task.WhenAll(answers).WaitAsync(Patience);

        Assert.Equal(2, most["a"]);
        Assert.Equal(2, most["b"]);
        await WaitUntilAsync(() => lanes.ActiveSkus == 0);
    }

    [Fact]
    public async Task Entries_queued_together_join_one_group_side_by_side()
    {
        var run = new FirstGroupHeld();
        var lanes = new SkuLanes<int, int>(maxGroupSize: 100, leadersPerSku: 1, run.RunAsync);

        var first = lanes.Enqueue("a", 0);
        await run.FirstStarted.Task.WaitAsync(Patience);
        var batch = Enumerable.Range(1, 3).Select(i => new LaneEntry<int, int>(i)).ToArray();
        lanes.Enqueue("a", batch);
        var last = lanes.Enqueue("a", 4);
        run.Release.SetResult();
        await Task.WhenAll([first, last, .. batch.Select(e => e.Completion.Task)]).WaitAsync(Patience);

        Assert.Equal([[0], [1, 2, 3, 4]], run.Groups);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the condition did not come true in time");
            await Task.Delay(5);
        }
    }

    /// <summary>Records each group's items and answers each item times ten; holds the first group until released.</summary>
    private sealed class FirstGroupHeld
    {
        public List<int[]> Groups { get; } = [];

        public TaskCompletionSource FirstStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task RunAsync(string sku, IReadOnlyList<LaneEntry<int, int>> group)
        {
            int count;
            lock (Groups)
            {
                Groups.Add([.. group.Select(e => e.Item)]);
                count = Groups.Count;
            }

            if (count == 1)
            {
                FirstStarted.SetResult();
                await Release.Task;
            }

            foreach (var entry in group)
            {
                entry.Completion.SetResult(entry.Item * 10);
            }
        }
    }
}
