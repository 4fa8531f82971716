namespace OrleansFlashSale.Grains;

/// <summary>
/// The bucket's transactions (<see cref="BucketEpoch"/>): a batch joins the open one, or opens the next, whose half
/// message is stored before its script runs; a transaction closes after <c>TransactionEpochMilliseconds</c>, or when
/// full, once its last batch has its answer, and is then committed (or rolled back) in one go.
/// </summary>
public sealed partial class BucketGrain
{
    /// <summary>Most orders one transaction takes: its commit is one broker message, whose size the broker bounds.</summary>
    private const int MaxEpochOrders = 2048;

    private readonly List<Task> _closing = [];
    private BucketEpoch? _epoch;

    /// <summary>The open transaction if it has room for <paramref name="works"/>, else a new one.</summary>
    private BucketEpoch EpochFor(BucketWorkKind kind, List<BucketWork> works)
    {
        if (_epoch is { Closing: false } open && open.Orders + works.Count <= MaxEpochOrders)
        {
            return open;
        }

        if (_epoch is { } full)
        {
            full.Closing = true;
            CloseIfDone(full);
        }

        var epoch = new BucketEpoch(Guid.CreateVersion7().ToString("N"));
        var spansBatches = _options.TransactionEpoch > TimeSpan.Zero;
        epoch.Half = SendHalfAsync(epoch, BucketEpoch.HalfPayloadFor(_sku, _index, spansBatches, kind, works));
        _epoch = epoch;
        if (spansBatches)
        {
            _ = ExpireAsync(epoch);
        }
        else
        {
            // One transaction per batch: it closes as soon as the batch it opened for has its answer.
            epoch.Closing = true;
        }

        return epoch;
    }

    private async Task ExpireAsync(BucketEpoch epoch)
    {
        // Real time, not the sale clock: this is the pipeline's cadence, not part of any sale's schedule.
        await Task.Delay(_options.TransactionEpoch);
        epoch.Closing = true;
        CloseIfDone(epoch);
    }

    /// <summary>Called whenever a batch of <paramref name="epoch"/> has its answer, or it stops taking batches.</summary>
    private void CloseIfDone(BucketEpoch epoch)
    {
        if (!epoch.Closing || epoch.Running > 0 || epoch.Closed)
        {
            return;
        }

        epoch.Closed = true;
        if (_epoch == epoch)
        {
            _epoch = null;
        }

        _closing.RemoveAll(t => t.IsCompleted);
        _closing.Add(CloseAsync(epoch));
    }

    /// <summary>Never throws: <see cref="FinishTransactionAsync"/> logs its own failures, which the check-back then repairs.</summary>
    private async Task CloseAsync(BucketEpoch epoch)
    {
        if (epoch.LeftToCheckBack || await epoch.Half is not { } half)
        {
            return;
        }

        await FinishTransactionAsync(half, epoch.Committed, epoch.LogEntries);
    }

    /// <summary>
    /// Closes the open transaction once its batches have their answers, so its orders leave now rather than after
    /// the check-back's timeout. Bounded by the deactivation's own time; what it cuts short the check-back finishes.
    /// </summary>
    private async Task CloseEpochsAsync(CancellationToken cancellationToken)
    {
        if (_epoch is { } open)
        {
            open.Closing = true;
            CloseIfDone(open);
        }

        try
        {
            await _pump.WhenIdle().WaitAsync(cancellationToken);
            await Task.WhenAll(_closing.ToArray()).WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Out of time: every transaction not committed yet is still a half message, which the check-back resolves.
        }
    }
}
