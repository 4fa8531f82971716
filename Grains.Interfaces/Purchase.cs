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
