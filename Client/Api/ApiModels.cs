namespace OrleansFlashSale.Client.Api;

/// <summary>Body of <c>POST /api/sales</c>.</summary>
public sealed record CreateSaleBody(
    string? Sku,
    long? Stock,
    int? Buckets,
    int? PerUserLimit,
    DateTimeOffset? StartsAt,
    DateTimeOffset? EndsAt,
    int? PaymentTimeoutSeconds,
    int? QuotaShards,
    string? Mode,
    bool? RequirePurchaseToken = null);

/// <summary>Body of <c>POST /api/sales/{sku}/purchases</c>.</summary>
public sealed record PurchaseBody(string? UserId, int? Quantity, string? RequestId, string? PurchaseToken = null);

/// <summary>Body of <c>PUT /api/sales/{sku}/buckets</c>.</summary>
public sealed record RebucketBody(int? Buckets);

public sealed record WriterPaceBody(int? MaxOrdersPerSecond);

/// <summary>The order writer's pace: at most this many orders per second into MySQL over the cluster, 0 = full speed.</summary>
public sealed record WriterPaceView(int MaxOrdersPerSecond, DateTimeOffset? ChangedAt)
{
    public static WriterPaceView From(WriterPace p) => new(p.MaxOrdersPerSecond, p.ChangedAt);
}

public sealed record SaleView(
    string Sku,
    long Stock,
    int Buckets,
    int PerUserLimit,
    DateTimeOffset? StartsAt,
    DateTimeOffset? EndsAt,
    int PaymentTimeoutSeconds,
    int QuotaShards,
    string Mode,
    bool RequirePurchaseToken)
{
    public static SaleView From(SaleDefinition s) =>
        new(s.Sku, s.Stock, s.Buckets, s.PerUserLimit, s.StartsAt, s.EndsAt, s.PaymentTimeoutSeconds, s.QuotaShards, s.Mode, s.RequirePurchaseToken);
}

/// <summary>A closed sale: its definition (the end now set), when it was closed, and the records given a TTL by this call.</summary>
public sealed record ClosedSaleView(SaleView Sale, DateTimeOffset ClosedAt, long RecordsExpiring);

public sealed record BucketView(int Index, long Remaining);

public sealed record SaleStatusView(
    string Sku,
    long Stock,
    long Remaining,
    long Sold,
    string State,
    int PerUserLimit,
    long LayoutVersion,
    IReadOnlyList<BucketView> Buckets)
{
    public static SaleStatusView From(SaleStatus s) => new(
        s.Sale.Sku, s.Sale.Stock, s.Remaining, s.Sold, s.State, s.Sale.PerUserLimit, s.LayoutVersion,
        s.Buckets.Select(b => new BucketView(b.Index, b.Remaining)).ToArray());
}

public sealed record OrderView(string OrderId, string Sku, string UserId, string RequestId, int Quantity, string Status)
{
    public static OrderView From(OrderInfo o) => new(o.OrderId, o.Sku, o.UserId, o.RequestId, o.Quantity, o.Status);
}
