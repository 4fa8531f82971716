namespace OrleansFlashSale.Persistence;

/// <summary>
/// One order was not stored: MySQL has fewer units left for its SKU than the order takes (or no inventory row for
/// the SKU). Redis and MySQL disagree, and storing it would oversell MySQL. The orders of its group that fit were
/// stored; only this one is refused.
/// </summary>
public sealed class InventoryDriftException : Exception
{
    public InventoryDriftException(string sku, string orderId, long units, long? available)
        : base(available is { } left
            ? $"Inventory drift for SKU '{sku}': order '{orderId}' takes {units} units but MySQL has {left} available after the orders before it that fit; the order was not stored."
            : $"Inventory drift for SKU '{sku}': order '{orderId}' takes {units} units but MySQL has no inventory row; the order was not stored.")
    {
        Sku = sku;
        OrderId = orderId;
        Units = units;
        Available = available;
    }

    public string Sku { get; }

    public string OrderId { get; }

    /// <summary>Units the order takes.</summary>
    public long Units { get; }

    /// <summary>
    /// What <c>inventory.available_stock</c> had left for the order once the orders of its group before it (in
    /// commit order) that fit were taken; null when the row is missing.
    /// </summary>
    public long? Available { get; }
}
