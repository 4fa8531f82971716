namespace OrleansFlashSale;

/// <summary>A buyer's request to buy <see cref="Quantity"/> units; <see cref="RequestId"/> makes retries safe.</summary>
[GenerateSerializer, Immutable, Alias("flashsale.PurchaseRequest")]
public sealed record PurchaseRequest(
    [property: Id(0)] string Sku,
    [property: Id(1)] string UserId,
    [property: Id(2)] string RequestId,
    [property: Id(3)] int Quantity);

public enum PurchaseOutcome
{
    /// <summary>A new order was created by this request.</summary>
    Created,

    /// <summary>The request id was seen before; the original order is returned.</summary>
    Replayed,
    SoldOut,
    LimitExceeded,
    NotStarted,
    Ended,
    UnknownSale,
    Invalid,

    /// <summary>A dependency failed; the order may or may not exist and the request can be replayed safely.</summary>
    Unavailable,
}

public static class OrderStatuses
{
    /// <summary>Deducted in Redis; the order pipeline has not yet written it to MySQL.</summary>
    public const string Reserved = "reserved";
}

[GenerateSerializer, Immutable, Alias("flashsale.OrderInfo")]
public sealed record OrderInfo(
    [property: Id(0)] string OrderId,
    [property: Id(1)] string Sku,
    [property: Id(2)] string UserId,
    [property: Id(3)] string RequestId,
    [property: Id(4)] int Quantity,
    [property: Id(5)] string Status,
    [property: Id(6)] int Bucket);

[GenerateSerializer, Immutable, Alias("flashsale.PurchaseResult")]
public sealed record PurchaseResult(
    [property: Id(0)] PurchaseOutcome Outcome,
    [property: Id(1)] OrderInfo? Order,
    [property: Id(2)] string? Detail)
{
    public static PurchaseResult Rejected(PurchaseOutcome outcome, string? detail = null) => new(outcome, null, detail);
}

/// <summary>
/// What a buyer needs back from a purchase, and nothing more: the order's id, quantity and bucket when one exists.
/// The sale, user and request ids are the caller's own.
/// </summary>
[GenerateSerializer, Immutable, Alias("flashsale.PurchaseReply")]
public sealed record PurchaseReply(
    [property: Id(0)] PurchaseOutcome Outcome,
    [property: Id(1)] string? OrderId,
    [property: Id(2)] int Quantity,
    [property: Id(3)] int Bucket,
    [property: Id(4)] string? Detail)
{
    public static PurchaseReply Rejected(PurchaseOutcome outcome, string? detail = null) => new(outcome, null, 0, -1, detail);

    public static PurchaseReply From(PurchaseResult result) => result.Order is { } o
        ? new(result.Outcome, o.OrderId, o.Quantity, o.Bucket, result.Detail)
        : Rejected(result.Outcome, result.Detail);

    /// <summary>The full result, rebuilt from the caller's own request.</summary>
    public PurchaseResult ToResult(PurchaseRequest request) => OrderId is null
        ? PurchaseResult.Rejected(Outcome, Detail)
        : new(Outcome, new OrderInfo(OrderId, request.Sku, request.UserId, request.RequestId, Quantity, OrderStatuses.Reserved, Bucket), Detail);
}
