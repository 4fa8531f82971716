using OrleansFlashSale.Messaging;
using OrleansFlashSale.Pipeline;

namespace OrleansFlashSale.Grains;

/// <summary>
/// One RocketMQ-style transaction of a bucket, which may span several of its batches: its half message is stored
/// before the first of them runs its script, every script of it carries its id (in the fence and in each log entry),
/// and it is committed once, with every order they deducted, when it closes. The cost of a half message, a commit and
/// a stream event is then shared by all the orders of the epoch instead of those of one batch.
/// </summary>
/// <remarks>Touched only by its bucket's activation, so it needs no lock.</remarks>
internal sealed class BucketEpoch(string transactionId)
{
    public string TransactionId { get; } = transactionId;

    /// <summary>The half message; null when the broker did not store it (<see cref="HalfFailure"/>).</summary>
    public Task<HalfMessageHandle?> Half { get; set; } = Task.FromResult<HalfMessageHandle?>(null);

    public Exception? HalfFailure { get; set; }

    /// <summary>Orders of the batches given to this epoch, deducted or not: what bounds the commit message's size.</summary>
    public int Orders { get; set; }

    /// <summary>Batches given to this epoch whose answers are not in yet.</summary>
    public int Running { get; set; }

    /// <summary>Takes no more batches; closes once <see cref="Running"/> is 0.</summary>
    public bool Closing { get; set; }

    public bool Closed { get; set; }

    /// <summary>Set by <see cref="LeaveToCheckBack"/>: the bucket neither commits nor rolls this transaction back.</summary>
    public bool LeftToCheckBack { get; private set; }

    /// <summary>
    /// The bucket cannot know every order of this transaction (a script's answer was lost) or the check-back answered
    /// for it: it takes no more batches, and the check-back commits it from the log.
    /// </summary>
    public void LeaveToCheckBack()
    {
        LeftToCheckBack = true;
        Closing = true;
    }

    public List<DeductionRecord> Committed { get; } = [];

    public List<string> LogEntries { get; } = [];

    /// <summary>
    /// What the half message announces. A transaction that may span batches names no orders (they are not known yet;
    /// the check-back finds them in the log by the transaction id). A transaction of one batch lists them, in the form
    /// that versions before epochs store and answer, so that during a rolling upgrade an older silo's check-back can
    /// resolve it.
    /// </summary>
    public static HalfPayload HalfPayloadFor(string sku, int bucket, bool spansBatches, BucketWorkKind kind, IReadOnlyList<BucketWork> works) =>
        spansBatches
            ? new HalfPayload(sku, bucket, [], HalfPayload.Epoch)
            : new HalfPayload(sku, bucket, works.Select(w => new PendingOrder(w.Order, w.Request, w.User, w.Quantity)).ToArray(),
                kind == BucketWorkKind.Purchase ? HalfPayload.HomePurchase : HalfPayload.Deduction);
}
