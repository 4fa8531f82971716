namespace OrleansFlashSale.Persistence;

// What the grains and the pipeline's services ask of the MySQL store, so that they reach storage through interfaces
// (the MySQL classes in MySql/ implement them) and a test or another store can stand in.

/// <summary>An order's life after its deduction: payment, expiry and cancellation, the units' return.</summary>
public interface IOrderLifecycleStore
{
    Task<StoredOrder?> GetAsync(string orderId);

    /// <summary>False when the order was no longer pending (paid, or released already).</summary>
    Task<bool> MarkPaidAsync(string orderId, string userId);

    /// <summary>Expires or cancels a pending order and gives its units back to MySQL's inventory, in one transaction.</summary>
    Task<bool> ReleaseAsync(StoredOrder order, string newStatus, int returnBucket);

    /// <summary>The released order's units are back in Redis too.</summary>
    Task MarkReturnedAsync(string orderId);

    Task<IReadOnlyList<StoredOrder>> FindExpiredAsync(string? sku, long nowMs, int limit, long afterMs = -1, string afterId = "");

    Task<IReadOnlyList<StoredOrder>> FindUnreturnedAsync(string? sku, TimeSpan olderThan, int limit);

    Task<IReadOnlyList<string>> ListSalesAsync();

    Task SetPaymentTimeoutAsync(string sku, int seconds);
}

/// <summary>A sale's inventory row.</summary>
public interface IInventoryStore
{
    /// <summary>Creates the row with <paramref name="totalStock"/> unless it exists.</summary>
    Task EnsureInventoryAsync(string sku, long totalStock, CancellationToken cancellationToken = default);

    /// <summary>The row's <c>available_stock</c>; null without a row.</summary>
    Task<long?> GetAvailableAsync(string sku, CancellationToken cancellationToken = default);
}

/// <summary>Database mode: a purchase deducted in MySQL itself, grouped with its SKU's others.</summary>
public interface IDatabaseDeductor
{
    Task<DatabaseDeductOutcome> DeductAsync(DeductionRecord record);
}

/// <summary>What MySQL holds of a sale, as the reconciliation and the bench read it.</summary>
public interface IOrderReadStore
{
    Task<SaleRows> ReadSaleAsync(string sku, IReadOnlyCollection<string> logOrderIds, bool withOrders);

    Task<SkuTotals> TotalsAsync(string sku, CancellationToken cancellationToken = default);

    Task<long?> AvailableStockAsync(string sku, CancellationToken cancellationToken = default);

    Task<List<OrderTrip>> TripsAsync(string sku, CancellationToken cancellationToken = default);
}
