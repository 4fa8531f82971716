namespace OrleansFlashSale.Grains.Persistence;

/// <summary>
/// A group would take more units than MySQL has left for its SKU (or MySQL has no inventory row for it). Redis
/// and MySQL disagree; committing would oversell MySQL, so the whole group was rolled back.
/// </summary>
public sealed class InventoryDriftException : Exception
{
    public InventoryDriftException(string sku, long units, long? available, Exception? innerException = null)
        : base(available is { } left
            ? $"Inventory drift for SKU '{sku}': the group takes {units} units but MySQL has {left} available; the group was rolled back."
            : $"Inventory drift for SKU '{sku}': the group takes {units} units but MySQL has no inventory row; the group was rolled back.",
            innerException)
    {
        Sku = sku;
        Units = units;
        Available = available;
    }

    public string Sku { get; }

    /// <summary>Units the group would have taken (new orders only).</summary>
    public long Units { get; }

    /// <summary>What <c>inventory.available_stock</c> held after the rollback; null when the row is missing.</summary>
    public long? Available { get; }
}
