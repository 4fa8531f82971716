namespace OrleansFlashSale;

/// <summary>How a sale deducts stock.</summary>
public static class SaleModes
{
    /// <summary>Bucketed stock in Redis, persisted to MySQL afterwards.</summary>
    public const string Redis = "redis";

    /// <summary>
    /// Stock only in MySQL's inventory row: every purchase is deducted there by a group transaction before the
    /// buyer is answered (the Inventory Hint database deduction tier).
    /// </summary>
    public const string Database = "database";
}

/// <summary>One flash sale: a SKU, its stock and the rules buyers meet.</summary>
/// <remarks>
/// <see cref="QuotaShards"/> is fixed when the sale is created. Per-user counters live in quota shards chosen by a
/// hash of the user id, so changing the bucket count never moves a user's counter.
/// <see cref="RequirePurchaseToken"/> came later under a new id: state stored before it reads as false.
/// </remarks>
[GenerateSerializer, Immutable, Alias("flashsale.SaleDefinition")]
public sealed record SaleDefinition(
    [property: Id(0)] string Sku,
    [property: Id(1)] long Stock,
    [property: Id(2)] int Buckets,
    [property: Id(3)] int PerUserLimit,
    [property: Id(4)] DateTimeOffset? StartsAt,
    [property: Id(5)] DateTimeOffset? EndsAt,
    [property: Id(6)] int PaymentTimeoutSeconds,
    [property: Id(7)] int QuotaShards,
    [property: Id(8)] string Mode,
    [property: Id(9)] bool RequirePurchaseToken = false);

public enum CreateSaleOutcome
{
    Created,
    Exists,
    Invalid,
}

[GenerateSerializer, Immutable, Alias("flashsale.CreateSaleResult")]
public sealed record CreateSaleResult(
    [property: Id(0)] CreateSaleOutcome Outcome,
    [property: Id(1)] SaleDefinition? Sale,
    [property: Id(2)] string? Error);

/// <summary>
/// The answer to closing a sale: the definition as it now is (its end set), when it was closed, and how many of its
/// Redis records were given a TTL by this call. <see cref="Sale"/> is null for an unknown sale.
/// </summary>
[GenerateSerializer, Immutable, Alias("flashsale.CloseSaleResult")]
public sealed record CloseSaleResult(
    [property: Id(0)] SaleDefinition? Sale,
    [property: Id(1)] DateTimeOffset? ClosedAt,
    [property: Id(2)] long RecordsExpiring);
