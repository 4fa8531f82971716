namespace OrleansFlashSale.Grains;

/// <summary>
/// Drains work a grain activation has queued, a batch at a time. Started from inside a grain turn, a drain and all its
/// continuations run on the activation's scheduler, interleaved with the (reentrant) calls that queue more work, so
/// the queues need no lock and nothing leaves the activation. A drain runs rounds until one finds no work left; at
/// most <c>maxDrains</c> run at once, so their rounds may overlap (one batch in flight while the next is sent).
/// </summary>
/// <remarks>
/// A round owns its batch: it answers each item (result or exception), whatever fails, so no caller waits forever.
/// The pump only decides when rounds run.
/// </remarks>
internal sealed class ActivationPump
{
    private readonly Func<bool> _hasWork;
    private readonly Func<Task> _roundAsync;
    private readonly bool _yieldFirst;
    private readonly int _maxDrains;

    // Finished drains are dropped when the next one starts, so this holds at most maxDrains tasks however long the
    // activation lives.
    private readonly List<Task> _drains;
    private int _running;

    /// <param name="maxBatch">The most items <see cref="Take{T}"/> hands a round.</param>
    /// <param name="hasWork">Whether a round has anything to do; drains stop once it is false.</param>
    /// <param name="roundAsync">Takes one batch (or more, of different queues), sends it and answers its items.</param>
    /// <param name="yieldFirst">
    /// Let the calls already waiting for the activation queue their work before a new drain takes its first batch.
    /// </param>
    /// <param name="maxDrains">How many drains may run at once.</param>
    public ActivationPump(int maxBatch, Func<bool> hasWork, Func<Task> roundAsync, bool yieldFirst, int maxDrains = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxDrains, 1);
        MaxBatch = maxBatch;
        _hasWork = hasWork;
        _roundAsync = roundAsync;
        _yieldFirst = yieldFirst;
        _maxDrains = maxDrains;
        _drains = new List<Task>(maxDrains);
    }

    public int MaxBatch { get; }

    /// <summary>Whether a drain is running (or about to take queued work).</summary>
    public bool Running => _running > 0;

    /// <summary>Starts a drain if there is work and fewer than <c>maxDrains</c> run. Call it from a grain turn.</summary>
    public void Start()
    {
        if (_running >= _maxDrains || !_hasWork())
        {
            return;
        }

        _running++;
        var drain = DrainAsync();
        _drains.RemoveAll(t => t.IsCompleted);
        _drains.Add(drain);
    }

    /// <summary>Completes once the drains running now have finished.</summary>
    public Task WhenIdle() => Task.WhenAll(_drains);

    /// <summary>
    /// Dequeues up to <see cref="MaxBatch"/> items from the head of <paramref name="queue"/>, stopping early at the
    /// first one <paramref name="fits"/> refuses (so one batch holds one kind of item), in queue order.
    /// </summary>
    public List<T> Take<T>(Queue<T> queue, Func<T, bool>? fits = null)
    {
        var batch = new List<T>(Math.Min(queue.Count, MaxBatch));
        while (batch.Count < MaxBatch && queue.Count > 0 && (fits is null || fits(queue.Peek())))
        {
            batch.Add(queue.Dequeue());
        }

        return batch;
    }

    private async Task DrainAsync()
    {
        try
        {
            if (_yieldFirst)
            {
                await Task.Yield();
            }

            while (_hasWork())
            {
                await _roundAsync();
            }
        }
        finally
        {
            _running--;
        }
    }
}
