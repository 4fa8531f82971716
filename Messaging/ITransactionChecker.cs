namespace OrleansFlashSale.Messaging;

/// <summary>
/// Answers the check-back for a half message whose producer neither committed nor rolled back in time (RocketMQ's
/// <c>checkLocalTransaction</c>). The answer must come from the local transaction's own durable record:
/// <list type="bullet">
/// <item>Answer <see cref="TransactionState.Rollback"/> only when the local transaction can no longer commit; a
/// producer that is merely slow may still commit after this answer, and its messages would then be published with no
/// half message left.</item>
/// <item>For <see cref="TransactionState.Commit"/>, return the same messages with the same message ids the producer
/// would have committed, so the broker can drop the copies both of them publish.</item>
/// <item>Answer <see cref="TransactionState.Unknown"/> while undecided; the check is repeated, at most
/// <c>MaxChecks</c> times in all.</item>
/// <item>Throw when the answer cannot be had now (the local store is unreachable, or still loading its data). The
/// check is repeated after the check interval for as long as that lasts, and is not counted against <c>MaxChecks</c>:
/// giving up would strand a transaction that may have committed. Throw <see cref="InvalidHalfMessageException"/>
/// for a half message that can never be answered.</item>
/// </list>
/// Checks may run in several processes at once and a half message may be checked again after an answer was acted on,
/// so the answer must not depend on being asked once.
/// </summary>
public interface ITransactionChecker
{
    Task<TransactionCheckResult> CheckAsync(HalfMessage half, CancellationToken ct);

    /// <summary>
    /// Called once a <see cref="TransactionState.Commit"/> answer was carried out: the messages are stored and the half
    /// message is gone. For clean-up that must wait for the commit (the local store may now forget what it kept for
    /// the check). A failure is logged and not retried: the transaction stays committed.
    /// </summary>
    Task CommittedAsync(HalfMessage half, TransactionCheckResult result, CancellationToken ct) => Task.CompletedTask;
}
