using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace OrleansFlashSale.Persistence;

/// <summary>
/// Group commit of deductions, the application-side half of AliSQL's Inventory Hint: callers of one SKU are
/// gathered into groups and each group is written by one transaction of <see cref="MySqlOrderStore"/>, so the hot
/// inventory row is locked once per group instead of once per order.
/// </summary>
/// <remarks>
/// Per SKU, as in AliSQL's leader/follower group commit, whoever arrives while a group's transaction runs collects
/// into the next group; when a leader is free, the collected group (at most
/// <see cref="OrderStoreOptions.MaxGroupSize"/> records) goes next. There is no timer: a lone caller is committed at
/// once, and groups grow by themselves with the load. Up to <see cref="OrderStoreOptions.CommitsPerSku"/> leaders
/// (transactions) per SKU run at once: each group's inserts take most of its time and lock only its own rows, so a
/// second group can insert while the first holds the hot row through its UPDATE and COMMIT; the row lock still
/// orders the UPDATEs. SKUs run in parallel. Thread-safe; meant for code outside grains, such as a queue consumer.
/// </remarks>
public sealed partial class GroupCommitter
{
    private readonly MySqlOrderStore _store;
    private readonly int _maxGroupSize;
    private readonly int _leadersPerSku;
    private readonly ILogger<GroupCommitter> _logger;
    private readonly ConcurrentDictionary<string, Lane> _lanes = new(StringComparer.Ordinal);

    public GroupCommitter(MySqlOrderStore store, IOptions<OrderStoreOptions> options, ILogger<GroupCommitter> logger)
    {
        _store = store;
        _maxGroupSize = options.Value.MaxGroupSize;
        _leadersPerSku = options.Value.CommitsPerSku;
        _logger = logger;
    }

    /// <summary>SKUs with a group being committed or waiting.</summary>
    public int ActiveSkus => _lanes.Count;

    /// <summary>
    /// Completes when the group that carries <paramref name="record"/> is committed, with that group's result, or
    /// fails with the group's exception (every caller of a failed group gets it). A record already stored is
    /// accepted and counts nothing. A record MySQL has too little stock for fails alone with an
    /// <see cref="InventoryDriftException"/> naming it: the rest of its group is committed.
    /// </summary>
    /// <exception cref="ArgumentException">Thrown at once for a record the schema would refuse; it joins no group.</exception>
    public Task<GroupCommitResult> SubmitAsync(DeductionRecord record)
    {
        InventorySql.Check(record);
        var pending = new Pending(record);
        Enqueue(record.Sku, [pending]);
        return pending.Completion.Task;
    }

    /// <summary>
    /// Submits several records at once (one task per record, same order). Records of one SKU join the collecting
    /// group together, so a batch that fits in a group is committed by one transaction.
    /// </summary>
    /// <exception cref="ArgumentException">Thrown at once if any record is invalid; then none is submitted.</exception>
    public IReadOnlyList<Task<GroupCommitResult>> Submit(IReadOnlyList<DeductionRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        foreach (var record in records)
        {
            InventorySql.Check(record);
        }

        var pending = records.Select(r => new Pending(r)).ToArray();
        foreach (var sku in pending.GroupBy(p => p.Record.Sku, StringComparer.Ordinal))
        {
            Enqueue(sku.Key, sku.ToArray());
        }

        return Array.ConvertAll(pending, p => p.Completion.Task);
    }

    private void Enqueue(string sku, Pending[] items)
    {
        while (true)
        {
            var lane = _lanes.GetOrAdd(sku, static s => new Lane(s));
            bool lead;
            lock (lane.Gate)
            {
                if (lane.Retired)
                {
                    // Its leader removed it after finding nothing to do; the next GetOrAdd makes a new one.
                    continue;
                }

                lane.Collecting.AddRange(items);
                lead = lane.Leaders < _leadersPerSku;
                if (lead)
                {
                    lane.Leaders++;
                }
            }

            if (lead)
            {
                // The leader runs on the thread pool without the caller's context: a caller inside a grain must not
                // lend it the grain's scheduler, nor its ambient state to every group that follows.
                ThreadPool.UnsafeQueueUserWorkItem(static state => _ = state.Committer.LeadAsync(state.Lane), (Committer: this, Lane: lane), preferLocal: false);
            }

            return;
        }
    }

    /// <summary>Commits the lane's groups one after another until none is waiting (other leaders of the lane alike).</summary>
    private async Task LeadAsync(Lane lane)
    {
        while (true)
        {
            List<Pending> group;
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

            await CommitAsync(lane.Sku, group);
            lock (lane.Gate)
            {
                lane.Recycle(group);
            }
        }
    }

    private async Task CommitAsync(string sku, List<Pending> group)
    {
        try
        {
            var records = new DeductionRecord[group.Count];
            for (var i = 0; i < records.Length; i++)
            {
                records[i] = group[i].Record;
            }

            // No caller's token: a group serves many callers, and a commit once started is seen through.
            var result = await _store.CommitGroupAsync(sku, records, CancellationToken.None);
            var refused = result.Refused.Count == 0 ? null : result.Refused.ToDictionary(r => r.Record.OrderId, StringComparer.Ordinal);
            foreach (var pending in group)
            {
                if (refused is not null && refused.TryGetValue(pending.Record.OrderId, out var order))
                {
                    pending.Completion.TrySetException(new InventoryDriftException(sku, order.Record.OrderId, order.Record.Quantity, order.Available));
                }
                else
                {
                    pending.Completion.TrySetResult(result);
                }
            }
        }
        catch (Exception ex)
        {
            LogGroupFailed(_logger, ex, sku, group.Count);
            foreach (var pending in group)
            {
                pending.Completion.TrySetException(ex);
            }
        }
    }

    [LoggerMessage(EventId = 1110, Level = LogLevel.Error, Message = "Order group {Sku}: commit of {Count} orders failed; every caller of the group gets the error")]
    private static partial void LogGroupFailed(ILogger logger, Exception exception, string sku, int count);

    private sealed class Pending(DeductionRecord record)
    {
        public DeductionRecord Record { get; } = record;

        // Callers resume on the thread pool, not inline on the leader, which moves on to the next group at once.
        public TaskCompletionSource<GroupCommitResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>One SKU's collecting unit and its leaders. Guarded by <see cref="Gate"/>.</summary>
    private sealed class Lane(string sku)
    {
        private List<Pending> _spare = [];

        public string Sku { get; } = sku;

        public Lock Gate { get; } = new();

        /// <summary>The unit that collects while the leaders commit.</summary>
        public List<Pending> Collecting { get; private set; } = [];

        /// <summary>Leaders running for this lane, each committing one group at a time.</summary>
        public int Leaders { get; set; }

        /// <summary>Removed from the lane map; submitters must fetch a fresh lane.</summary>
        public bool Retired { get; set; }

        /// <summary>Seals the collecting unit (or its first <paramref name="max"/> records) as the next group.</summary>
        public List<Pending> TakeGroup(int max)
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

        /// <summary>Hands a committed group's list back as the spare unit.</summary>
        public void Recycle(List<Pending> group)
        {
            group.Clear();
            _spare = group;
        }
    }
}
