namespace OrleansFlashSale;

/// <summary>
/// One deduction Redis accepted, on its way to MySQL. <see cref="OrderId"/> is the idempotency key: a record that
/// is delivered again is ignored by the store.
/// </summary>
[GenerateSerializer, Immutable, Alias("flashsale.DeductionRecord")]
public sealed record DeductionRecord(
    [property: Id(0)] string OrderId,
    [property: Id(1)] string RequestId,
    [property: Id(2)] string Sku,
    [property: Id(3)] string UserId,
    [property: Id(4)] int Quantity,
    [property: Id(5)] int Bucket,
    [property: Id(6)] long CommittedAtMs);

/// <summary>What one group transaction did.</summary>
/// <param name="Offered">Records in the group, duplicates included.</param>
/// <param name="Inserted">
/// Order rows this transaction inserted; the rest were already stored (redelivery) or are <see cref="Refused"/>.
/// </param>
/// <param name="Units">Units taken from <c>inventory.available_stock</c>: the quantity of the inserted rows.</param>
public sealed record GroupCommitResult(int Offered, int Inserted, long Units)
{
    /// <summary>
    /// New orders not stored because MySQL had too few units left for them (inventory drift), in the order they were
    /// tried; empty unless the group drifted.
    /// </summary>
    public IReadOnlyList<RefusedOrder> Refused { get; init; } = [];

    public bool Equals(GroupCommitResult? other) =>
        other is not null && Offered == other.Offered && Inserted == other.Inserted && Units == other.Units
        && Refused.SequenceEqual(other.Refused);

    public override int GetHashCode() => HashCode.Combine(Offered, Inserted, Units, Refused.Count);
}

/// <summary>An order of a drifted group that MySQL has too little stock for; it was not stored.</summary>
/// <param name="Available">
/// Units left when it was tried, after the orders before it that fit; null when the SKU has no inventory row.
/// </param>
public sealed record RefusedOrder(DeductionRecord Record, long? Available);

/// <summary>Values of <c>orders.status</c>; the schema refuses any other.</summary>
public static class OrderRowStatus
{
    public const string PendingPayment = "pending_payment";
    public const string Paid = "paid";
    public const string Cancelled = "cancelled";
    public const string Expired = "expired";
}

/// <summary>Values of <c>inventory_log.reason</c>. Only returns are logged now; <see cref="Deduct"/> rows come from versions before V006.</summary>
public static class InventoryLogReason
{
    public const string Deduct = "deduct";
    public const string Return = "return";
}
