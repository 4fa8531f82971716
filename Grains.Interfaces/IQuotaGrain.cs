namespace OrleansFlashSale;

/// <summary>
/// The front door of a purchase. Key: the quota shard (hash of the user id modulo the sale's quota shards) with
/// the SKU as key extension. It enforces idempotency and the per-user limit, then finds a bucket with stock.
/// </summary>
[Alias("flashsale.IQuotaGrain")]
public interface IQuotaGrain : IGrainWithIntegerCompoundKey
{
    [Alias("Purchase")]
    Task<PurchaseResult> PurchaseAsync(PurchaseRequest request);

    /// <summary>The product changed the sale's definition (it was closed): purchases from now on see the new one.</summary>
    [Alias("SaleChanged")]
    Task SaleChangedAsync(SaleDefinition sale);

    /// <summary>Units held by the user in this sale (reserved or bought).</summary>
    [Alias("GetUserUnits")]
    Task<long> GetUserUnitsAsync(string userId);
}
