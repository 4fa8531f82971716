using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace OrleansFlashSale.Persistence;

/// <summary>
/// Group commit of deductions, the application-side half of AliSQL's Inventory Hint: callers of one SKU are
/// gathered into groups and each group is written by one transaction of <see cref="MySqlOrderStore"/>, so the hot
/// inventory row is locked once per group instead of once per order.
/// </summary>
/// <remarks>
/// Per SKU, as in AliSQL's leader/follower group commit (<see cref="SkuLanes{TItem, TResult}"/>), whoever arrives
/// while a group's transaction runs collects into the next group; when a leader is free, the collected group (at most
/// <see cref="OrderStoreOptions.MaxGroupSize"/> records) goes next. Up to <see cref="OrderStoreOptions.CommitsPerSku"/>
/// leaders (transactions) per SKU run at once: each group's inserts take most of its time and lock only its own rows,
/// so a second group can insert while the first holds the hot row through its UPDATE and COMMIT; the row lock still
/// orders the UPDATEs. Thread-safe; meant for code outside grains, such as a queue consumer.
/// </remarks>
public sealed partial class GroupCommitter
{
    private readonly MySqlOrderStore _store;
    private readonly ILogger<GroupCommitter> _logger;
    private readonly SkuLanes<DeductionRecord, GroupCommitResult> _lanes;

    public GroupCommitter(MySqlOrderStore store, IOptions<OrderStoreOptions> options, ILogger<GroupCommitter> logger)
    {
        _store = store;
        _logger = logger;
        _lanes = new(options.Value.MaxGroupSize, options.Value.CommitsPerSku, CommitAsync);
    }

    /// <summary>SKUs with a group being committed or waiting.</summary>
    public int ActiveSkus => _lanes.ActiveSkus;

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
        return _lanes.Enqueue(record.Sku, record);
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

        var entries = records.Select(r => new LaneEntry<DeductionRecord, GroupCommitResult>(r)).ToArray();
        foreach (var sku in entries.GroupBy(e => e.Item.Sku, StringComparer.Ordinal))
        {
            _lanes.Enqueue(sku.Key, sku.ToArray());
        }

        return Array.ConvertAll(entries, e => e.Completion.Task);
    }

    private async Task CommitAsync(string sku, IReadOnlyList<LaneEntry<DeductionRecord, GroupCommitResult>> group)
    {
        try
        {
            var records = new DeductionRecord[group.Count];
            for (var i = 0; i < records.Length; i++)
            {
                records[i] = group[i].Item;
            }

            // No caller's token: a group serves many callers, and a commit once started is seen through.
            var result = await _store.CommitGroupAsync(sku, records, CancellationToken.None);
            var refused = result.Refused.Count == 0 ? null : result.Refused.ToDictionary(r => r.Record.OrderId, StringComparer.Ordinal);
            foreach (var entry in group)
            {
                if (refused is not null && refused.TryGetValue(entry.Item.OrderId, out var order))
                {
                    entry.Completion.TrySetException(new InventoryDriftException(sku, order.Record.OrderId, order.Record.Quantity, order.Available));
                }
                else
                {
                    entry.Completion.TrySetResult(result);
                }
            }
        }
        catch (Exception ex)
        {
            // The lanes hand the exception to every caller of the group.
            LogGroupFailed(_logger, ex, sku, group.Count);
            throw;
        }
    }

    [LoggerMessage(EventId = 1110, Level = LogLevel.Error, Message = "Order group {Sku}: commit of {Count} orders failed; every caller of the group gets the error")]
    private static partial void LogGroupFailed(ILogger logger, Exception exception, string sku, int count);
}
