using System.Collections.Concurrent;

namespace OrleansFlashSale.Persistence;

/// <summary>A caller's item waiting in a <see cref="SkuLanes{TItem, TResult}"/>, and the task that answers it.</summary>
internal sealed class LaneEntry<TItem, TResult>(TItem item)
{
    public TItem Item { get; } = item;

    // Callers resume on the thread pool, not inline on the leader, which moves on to the next group at once.
    public TaskCompletionSource<TResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>
/// Per-SKU leader/follower grouping, as in AliSQL's group commit: whoever arrives while a group of its SKU runs
/// collects into the next group; when a leader is free, the collected items (the first <c>maxGroupSize</c>, in
/// arrival order) go next as one group, handed to <c>runGroup</c> (one transaction). Up to <c>leadersPerSku</c>
/// groups of one SKU run at once; SKUs run in parallel. There is no timer: a lone caller runs at once, and groups
/// grow by themselves with the load.
/// </summary>
/// <remarks>
/// <c>runGroup</c> answers every entry of its group. If it throws, every entry it has not answered gets that exception:
/// a group fails for all of its callers. No caller can cancel its entry: a group serves many callers, and one that
/// has started is seen through. The leader runs on the thread pool, never on a caller's scheduler. Thread-safe.
/// </remarks>
internal sealed class SkuLanes<TItem, TResult>
{
    private readonly ConcurrentDictionary<string, Lane> _lanes = new(StringComparer.Ordinal);
    private readonly int _maxGroupSize;
    private readonly int _leadersPerSku;
    private readonly Func<string, IReadOnlyList<LaneEntry<TItem, TResult>>, Task> _runGroup;

    /// <param name="runGroup">
    /// Runs one group of a SKU and answers its entries. The list is the lane's and is reused once the task completes.
    /// </param>
    public SkuLanes(int maxGroupSize, int leadersPerSku, Func<string, IReadOnlyList<LaneEntry<TItem, TResult>>, Task> runGroup)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxGroupSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(leadersPerSku, 1);
        _maxGroupSize = maxGroupSize;
        _leadersPerSku = leadersPerSku;
        _runGroup = runGroup;
    }

    /// <summary>SKUs with a group running or waiting.</summary>
    public int ActiveSkus => _lanes.Count;

    /// <summary>Queues one item in its SKU's lane; the task completes when its group has run.</summary>
    public Task<TResult> Enqueue(string sku, TItem item)
    {
        var entry = new LaneEntry<TItem, TResult>(item);
        Enqueue(sku, [entry]);
        return entry.Completion.Task;
    }

    /// <summary>Queues entries of one SKU together: they join the collecting group side by side, in this order.</summary>
    public void Enqueue(string sku, IReadOnlyList<LaneEntry<TItem, TResult>> entries)
    {
        while (true)
        {
            var lane = _lanes.GetOrAdd(sku, static s => new Lane(s));
            bool lead;
            lock (lane.Gate)
            {
                if (lane.Retired)
                {
                    // Its last leader removed it after finding nothing to do; the next GetOrAdd makes a new one.
                    continue;
                }

                lane.Collecting.AddRange(entries);
                lead = lane.Leaders < _leadersPerSku;
                if (lead)
                {
                    lane.Leaders++;
                }
            }

            if (lead)
            {
                // Without the caller's context: a caller inside a grain must not lend the leader the grain's scheduler,
                // nor its ambient state to every group that follows.
                ThreadPool.UnsafeQueueUserWorkItem(static state => _ = state.Lanes.LeadAsync(state.Lane), (Lanes: this, Lane: lane), preferLocal: false);
            }

            return;
        }
    }

    /// <summary>Runs the lane's groups one after another until none is waiting (other leaders of the lane alike).</summary>
    private async Task LeadAsync(Lane lane)
    {
        while (true)
        {
            List<LaneEntry<TItem, TResult>> group;
            lock (lane.Gate)
            {
                if (lane.Collecting.Count == 0)
                {
                    if (--lane.Leaders == 0)
                    {
                        lane.Retired = true;
                        _lanes.TryRemove(new KeyValuePair<string, Lane>(lane.Sku, lane));
                    }

                    return;
                }

                group = lane.TakeGroup(_maxGroupSize);
            }

            try
            {
                await _runGroup(lane.Sku, group);
            }
            catch (Exception ex)
            {
                // runGroup logged it; the callers get it.
                foreach (var entry in group)
                {
                    entry.Completion.TrySetException(ex);
                }
            }

            lock (lane.Gate)
            {
                lane.Recycle(group);
            }
        }
    }

    /// <summary>One SKU's collecting unit and its leaders. Guarded by <see cref="Gate"/>.</summary>
    private sealed class Lane(string sku)
    {
        private List<LaneEntry<TItem, TResult>> _spare = [];

        public string Sku { get; } = sku;

        public Lock Gate { get; } = new();

        /// <summary>The unit that collects while the leaders run groups.</summary>
        public List<LaneEntry<TItem, TResult>> Collecting { get; private set; } = [];

        /// <summary>Leaders running for this lane, each running one group at a time.</summary>
        public int Leaders { get; set; }

        /// <summary>Removed from the lane map; callers must fetch a fresh lane.</summary>
        public bool Retired { get; set; }

        /// <summary>Seals the collecting unit (or its first <paramref name="max"/> entries) as the next group.</summary>
        public List<LaneEntry<TItem, TResult>> TakeGroup(int max)
        {
            if (Collecting.Count <= max)
            {
                var group = Collecting;
                Collecting = _spare;
                _spare = [];
                return group;
            }

            var first = _spare;
            _spare = [];
            first.AddRange(Collecting.GetRange(0, max));
            Collecting.RemoveRange(0, max);
            return first;
        }

        /// <summary>Hands a finished group's list back as the spare unit.</summary>
        public void Recycle(List<LaneEntry<TItem, TResult>> group)
        {
            group.Clear();
            _spare = group;
        }
    }
}
