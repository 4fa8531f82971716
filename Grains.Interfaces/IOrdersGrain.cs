namespace OrleansFlashSale;

public enum OrderActionOutcome
{
    /// <summary>The change was made now.</summary>
    Done,

    /// <summary>The order was already in the asked state (a retry): answered as success.</summary>
    AlreadyDone,
    NotFound,

    /// <summary>The order is deducted in Redis but not yet in MySQL; retry shortly.</summary>
    NotReady,

    /// <summary>The order belongs to another user.</summary>
    Forbidden,

    /// <summary>The order's state does not allow it (see the code).</summary>
    Conflict,
}

[GenerateSerializer, Immutable, Alias("flashsale.OrderActionResult")]
public sealed record OrderActionResult(
    [property: Id(0)] OrderActionOutcome Outcome,
    [property: Id(1)] OrderInfo? Order,
    [property: Id(2)] string? Code);

public static class OrderLifecycleStatuses
{
    public const string PendingPayment = "pending_payment";
    public const string Paid = "paid";
    public const string Cancelled = "cancelled";
    public const string Expired = "expired";
}

/// <summary>Order look-up and lifecycle (pay, cancel, expire); a stateless worker, the rows are in MySQL.</summary>
[Alias("flashsale.IOrdersGrain")]
public interface IOrdersGrain : IGrainWithIntegerKey
{
    [Alias("Get")]
    Task<OrderInfo?> GetAsync(string orderId);

    [Alias("Pay")]
    Task<OrderActionResult> PayAsync(string orderId, string userId);

    /// <summary>Cancels an unpaid order and gives its units back, exactly once.</summary>
    [Alias("Cancel")]
    Task<OrderActionResult> CancelAsync(string orderId, string userId);

    /// <summary>
    /// Expires unpaid orders past their sale's payment timeout (of one SKU, or of all when null), and retries
    /// unfinished stock returns. Returns how many orders it expired.
    /// </summary>
    [Alias("ExpireDue")]
    Task<int> ExpireDueAsync(string? sku, int limit);
}
