namespace OrleansFlashSale.Messaging;

public enum TransactionState
{
    /// <summary>The local transaction committed: publish <see cref="TransactionCheckResult.ToCommit"/>.</summary>
    Commit,

    /// <summary>The local transaction did not and can no longer commit: drop the half message.</summary>
    Rollback,

    /// <summary>Not decided yet (or the answer could not be found): ask again later.</summary>
    Unknown,
}

/// <summary>A checker's answer. <see cref="ToCommit"/> is only read when <see cref="State"/> is <see cref="TransactionState.Commit"/>.</summary>
public sealed record TransactionCheckResult(TransactionState State, IReadOnlyList<OutgoingMessage> ToCommit)
{
    public static TransactionCheckResult Unknown { get; } = new(TransactionState.Unknown, []);

    public static TransactionCheckResult Rollback { get; } = new(TransactionState.Rollback, []);

    public static TransactionCheckResult Commit(IReadOnlyList<OutgoingMessage> messages) => new(TransactionState.Commit, messages);
}
