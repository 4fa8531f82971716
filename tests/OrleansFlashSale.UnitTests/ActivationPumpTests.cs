using OrleansFlashSale.Grains;

namespace OrleansFlashSale.UnitTests;

/// <summary>
/// The grains' pump without a silo. Each test runs on an exclusive scheduler, as a grain activation does: one turn at
/// a time, and every continuation (Task.Yield too) comes back to it.
/// </summary>
public sealed class ActivationPumpTests
{
    private static Task OnActivationAsync(Func<Task> body) =>
        Task.Factory.StartNew(body, CancellationToken.None, TaskCreationOptions.None,
            new ConcurrentExclusiveSchedulerPair().ExclusiveScheduler).Unwrap();

    [Fact]
    public Task A_drain_takes_batches_of_at_most_max_batch_in_queue_order_until_the_queue_is_empty() => OnActivationAsync(async () =>
    {
        var queue = new Queue<int>(Enumerable.Range(0, 7));
        var batches = new List<List<int>>();
        ActivationPump? pump = null;
        pump = new ActivationPump(3, () => queue.Count > 0, async () =>
        {
            batches.Add(pump!.Take(queue));
            await Task.Yield();
        }, yieldFirst: false);

        pump.Start();
        Assert.True(pump.Running);
        await pump.WhenIdle();

        Assert.False(pump.Running);
        Assert.Equal([[0, 1, 2], [3, 4, 5], [6]], batches);
    });

    [Theory]
    [InlineData(true, 3)]
    [InlineData(false, 1)]
    public Task Yielding_first_lets_the_work_queued_in_the_same_turn_join_the_first_batch(bool yieldFirst, int firstBatch) => OnActivationAsync(async () =>
    {
        var queue = new Queue<int>();
        var batches = new List<List<int>>();
        ActivationPump? pump = null;
        pump = new ActivationPump(10, () => queue.Count > 0, () =>
        {
            batches.Add(pump!.Take(queue));
            return Task.CompletedTask;
        }, yieldFirst);

        foreach (var item in new[] { 0, 1, 2 })
        {
            queue.Enqueue(item);
            pump.Start();
        }

        await pump.WhenIdle();

        Assert.Equal(firstBatch, batches[0].Count);
        Assert.Equal([0, 1, 2], batches.SelectMany(b => b));
    });

    [Fact]
    public Task At_most_max_drains_rounds_are_out_at_once_and_every_item_is_taken_once() => OnActivationAsync(async () =>
    {
        var queue = new Queue<int>();
        var gates = new List<TaskCompletionSource>();
        var taken = new List<int>();
        int running = 0, mostOut = 0;
        ActivationPump? pump = null;
        pump = new ActivationPump(1, () => queue.Count > 0, async () =>
        {
            taken.AddRange(pump!.Take(queue));
            mostOut = Math.Max(mostOut, ++running);
            var gate = new TaskCompletionSource();
            gates.Add(gate);
            await gate.Task;
            running--;
        }, yieldFirst: false, maxDrains: 2);

        for (var i = 0; i < 5; i++)
        {
            queue.Enqueue(i);
            pump.Start();
        }

        Assert.Equal(2, gates.Count);
        while (gates.Find(g => !g.Task.IsCompleted) is { } open)
        {
            open.SetResult();
            await Task.Yield();
        }

        await pump.WhenIdle();

        Assert.Equal(2, mostOut);
        Assert.Equal([0, 1, 2, 3, 4], taken);
        Assert.False(pump.Running);
    });

    [Fact]
    public void Take_stops_at_the_first_item_that_does_not_fit_the_batch()
    {
        var queue = new Queue<string>(["a1", "a2", "b1", "a3"]);
        var pump = new ActivationPump(10, () => false, () => Task.CompletedTask, yieldFirst: false);

        Assert.Equal(["a1", "a2"], pump.Take(queue, s => s[0] == 'a'));
        Assert.Equal(["b1", "a3"], queue);
    }
}
