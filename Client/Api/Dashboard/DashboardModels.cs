namespace OrleansFlashSale.Client.Api.Dashboard;

/// <summary>What <c>GET /api/admin/dashboard</c> answers: one sale in detail plus the cluster and the list of sales.</summary>
public sealed record DashboardView(
    DateTimeOffset GeneratedAt,
    IReadOnlyList<string> Sales,
    string? Sku,
    DashboardSale? Sale,
    DashboardRates? Rates,
    DashboardBooks? Books,
    string? BooksError,
    IReadOnlyList<DashboardSilo> Silos,
    string? SilosError);

public sealed record DashboardSale(
    string Sku,
    string Mode,
    long Stock,
    long Remaining,
    long Sold,
    string State,
    int PerUserLimit,
    long LayoutVersion,
    long InTransfer,
    IReadOnlyList<BucketView> Buckets);

/// <param name="StartUnixSeconds">The second of the first entry of every series.</param>
/// <param name="PerSecond">Per outcome, answers per second, oldest first.</param>
/// <param name="LastMinute">Per outcome, answers in the last 60 complete seconds.</param>
/// <param name="Total">Per outcome, answers in the whole window.</param>
public sealed record DashboardRates(
    int WindowSeconds,
    long StartUnixSeconds,
    IReadOnlyDictionary<string, long[]> PerSecond,
    IReadOnlyDictionary<string, long> LastMinute,
    IReadOnlyDictionary<string, long> Total);

/// <summary>The reconciliation's summary of the pipeline (Redis, JetStream, MySQL; counts only); refreshed every few seconds.</summary>
/// <param name="AcknowledgedUnits">Units sold according to Redis: buyers were told yes for these.</param>
/// <param name="PersistedUnits">Units of live orders (pending payment or paid) in MySQL.</param>
/// <param name="InFlightUnits">Acknowledged but not yet in MySQL (negative would be drift).</param>
/// <param name="OldestUnpersistedAgeMs">Age of the oldest order deducted in Redis and not yet in MySQL.</param>
public sealed record DashboardBooks(
    DateTimeOffset CheckedAt,
    long AcknowledgedUnits,
    long PersistedUnits,
    long InFlightUnits,
    long? OldestUnpersistedAgeMs,
    long PendingOrders,
    long MissingOrders,
    long WriterPending,
    long HalfMessages,
    long DeadLetters,
    long CheckMax,
    long? AvailableStock,
    IReadOnlyList<OrderStatusUnits> OrdersByStatus,
    bool AtRest,
    bool Drift,
    IReadOnlyList<string> Problems);

public sealed record DashboardSilo(string Address, string Name, string HostName, string Status, DateTime StartedAt, DateTime LastAlive);
