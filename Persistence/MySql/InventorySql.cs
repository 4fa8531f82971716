using System.Globalization;
using System.Text;

namespace OrleansFlashSale.Persistence;

/// <summary>
/// The SQL of one group transaction: every statement in the order it is sent, and the values it binds. Values are
/// always parameters; the text only ever holds parameter names. Plain data, so both flavours can be checked without
/// a server that knows them.
/// </summary>
public sealed class GroupSql
{
    internal GroupSql(string sku, string batchId, int offered, long offeredUnits, IReadOnlyList<string> stage, string sum,
        string deduct, string? commit, IReadOnlyList<KeyValuePair<string, object>> parameters)
    {
        Sku = sku;
        BatchId = batchId;
        Offered = offered;
        OfferedUnits = offeredUnits;
        StageStatements = stage;
        SumStatement = sum;
        DeductStatement = deduct;
        CommitStatement = commit;
        Parameters = parameters;
    }

    public string Sku { get; }

    /// <summary>Written to <c>orders.commit_batch</c> of every row this transaction inserts.</summary>
    public string BatchId { get; }

    public int Offered { get; }

    /// <summary>The units of all offered orders: what the group takes when every one of them was inserted.</summary>
    public long OfferedUnits { get; }

    /// <summary>
    /// Sent together as the first round trip: begin the transaction and insert the orders. Their affected-row count
    /// is the number of orders inserted.
    /// </summary>
    public IReadOnlyList<string> StageStatements { get; }

    /// <summary>
    /// Sums the units and rows this attempt inserted. Sent only when some of the offered orders were already stored
    /// (a redelivery): otherwise every order was inserted and the group takes <see cref="OfferedUnits"/>.
    /// </summary>
    public string SumStatement { get; }

    /// <summary>The guarded stock UPDATE; binds <see cref="InventorySql.UnitsParameter"/> on top of <see cref="Parameters"/>.</summary>
    public string DeductStatement { get; }

    /// <summary>COMMIT, or null when <see cref="DeductStatement"/> commits by hint (AliSQL).</summary>
    public string? CommitStatement { get; }

    /// <summary>The values bound to <see cref="StageStatements"/> and <see cref="DeductStatement"/>.</summary>
    public IReadOnlyList<KeyValuePair<string, object>> Parameters { get; }

    /// <summary>
    /// Every statement of a transaction that commits with every order new, in the order it is sent (the usual case;
    /// <see cref="SumStatement"/> comes before the UPDATE when some were duplicates).
    /// </summary>
    public IReadOnlyList<string> Statements =>
        [.. StageStatements, DeductStatement, .. CommitStatement is null ? Array.Empty<string>() : [CommitStatement]];
}

/// <summary>What <see cref="InventorySql.Fit"/> decided for a drifted group.</summary>
/// <param name="Insert">The new orders that fit, in commit order.</param>
/// <param name="Refused">The new orders that do not, in commit order.</param>
public sealed record FittedGroup(IReadOnlyList<DeductionRecord> Insert, IReadOnlyList<RefusedOrder> Refused);

/// <summary>
/// Builds the SQL of a group: one transaction per group of orders of one SKU, as in AliSQL's Inventory Hint: one
/// multi-row INSERT of the orders and one UPDATE of the hot row.
/// </summary>
/// <remarks>
/// <para>The order row is the record of its deduction, so the group writes no <c>inventory_log</c> row per order:
/// that second row per order (with its three index entries) cost MariaDB about a third of its time per order. The
/// log keeps the movements that have no row of their own, the returns.</para>
/// <para>The INSERT's row count tells whether every order was new, which is the rule: the group then takes the units
/// of all of them, and no statement reads the rows back (that read cost MariaDB about a fifth of its time per order).
/// Only after a redelivery does the sum read the group's rows, by primary key (the ids it just sent), keeping those
/// stamped with this attempt's batch id: no secondary index on <c>commit_batch</c> has to be kept up to date on every
/// insert.</para>
/// <para>READ COMMITTED: the reads of the transaction take no gap locks next to rows other groups insert.</para>
/// <para>When the guarded UPDATE finds too little stock (drift), the group is rolled back and applied again order by
/// order in a transaction of its own (<see cref="LockAndReadStored"/>, <see cref="Fit"/>, the orders that fit,
/// <see cref="DeductLocked"/>, COMMIT): only the orders that do not fit are refused. That path is rare and costs a
/// second transaction; a group that fits still sends one INSERT and one UPDATE.</para>
/// </remarks>
public sealed class InventorySql
{
    /// <summary>The AliSQL Inventory Hint, placed right after UPDATE as the server requires.</summary>
    public const string InventoryHint = "/*+ COMMIT_ON_SUCCESS ROLLBACK_ON_FAIL TARGET_AFFECT_ROW(1) */";

    public const string UnitsParameter = "@units";

    public const string SkuParameter = Sku;

    public const string Rollback = "ROLLBACK";

    public const string Commit = "COMMIT";

    /// <summary>Creates the SKU's row with all of its stock available; an existing row is left as it is.</summary>
    public const string EnsureInventory =
        "INSERT IGNORE INTO inventory (sku, total_stock, available_stock) VALUES (@sku, @total, @total)";

    /// <summary>Read after a failed deduction, to tell drift from other failures.</summary>
    public const string ReadAvailable = "SELECT available_stock FROM inventory WHERE sku = @sku";

    private const int MaxTextLength = 64;

    // Per-row parameter names carry the row index; these are the shared ones.
    private const string Sku = "@sku";
    private const string Batch = "@batch";
    private const string Status = "@status";

    public InventorySql(OrderStoreFlavor flavor)
    {
        Flavor = flavor;
    }

    public OrderStoreFlavor Flavor { get; }

    /// <summary>The SQL of one group transaction. Throws <see cref="ArgumentException"/> for a record the schema would refuse.</summary>
    public GroupSql Build(string sku, IReadOnlyList<DeductionRecord> group, string batchId)
    {
        ArgumentNullException.ThrowIfNull(group);
        CheckText(sku, nameof(sku));
        if (group.Count == 0)
        {
            throw new ArgumentException("A group needs at least one record.", nameof(group));
        }

        if (batchId is not { Length: 32 })
        {
            throw new ArgumentException("A batch id is 32 characters (orders.commit_batch).", nameof(batchId));
        }

        var parameters = new List<KeyValuePair<string, object>>(group.Count * 6 + 3)
        {
            new(Sku, sku),
            new(Batch, batchId),
            new(Status, OrderRowStatus.PendingPayment),
        };
        long units = 0;
        foreach (var record in group)
        {
            Check(record, sku);
            units += record.Quantity;
        }

        string[] stage =
        [
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
            // Explicit: the AliSQL hint is refused in autocommit mode, and MariaDB needs it for the group anyway.
            "START TRANSACTION",
            InsertOrders(group, (name, value) => parameters.Add(new(name, value))),
        ];
        var sum = SumInserted(group.Count);
        return Flavor == OrderStoreFlavor.AliSql
            ? new GroupSql(sku, batchId, group.Count, units, stage, sum, Deduct(InventoryHint + " "), null, parameters)
            : new GroupSql(sku, batchId, group.Count, units, stage, sum, Deduct(""), Commit, parameters);
    }

    /// <summary>
    /// The UPDATE of a drifted group applied again: the inventory row is locked by then, and neither flavour carries
    /// the hint (the transaction ends with COMMIT).
    /// </summary>
    public static string DeductLocked { get; } = Deduct("");

    /// <summary>
    /// First round trip of a drifted group applied again: begin, lock the SKU's inventory row (its
    /// <c>available_stock</c> is the first result; none without a row), and read which of the group's orders, bound
    /// as <c>@o0</c> … <c>@o{count-1}</c>, are stored already (the second result).
    /// </summary>
    public static string LockAndReadStored(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        var sql = new StringBuilder(240 + count * 7);
        sql.Append("SET TRANSACTION ISOLATION LEVEL READ COMMITTED;\n")
            .Append("START TRANSACTION;\n")
            .Append("SELECT available_stock FROM inventory WHERE sku = ").Append(Sku).Append(" FOR UPDATE;\n")
            .Append("SELECT order_id FROM orders WHERE order_id IN (");
        for (var i = 0; i < count; i++)
        {
            sql.Append(i == 0 ? "@o" : ", @o").Append(i.ToString(CultureInfo.InvariantCulture));
        }

        return sql.Append(')').ToString();
    }

    /// <summary>
    /// Which orders of a drifted group to store with the <paramref name="available"/> units left: its new orders
    /// (not in <paramref name="stored"/>, each order id once) in the order Redis committed them (commit time, then
    /// order id), each one while what is left covers it. An order that does not fit is refused and the next, smaller
    /// ones may still fit. The answer depends only on the orders, the stored set and the stock, not on how the
    /// group's messages happened to be ordered. Without an inventory row (<paramref name="available"/> null) every
    /// new order is refused.
    /// </summary>
    public static FittedGroup Fit(IReadOnlyList<DeductionRecord> group, IReadOnlySet<string> stored, long? available)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(stored);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var candidates = new List<DeductionRecord>(group.Count);
        foreach (var record in group)
        {
            if (!stored.Contains(record.OrderId) && seen.Add(record.OrderId))
            {
                candidates.Add(record);
            }
        }

        candidates.Sort(static (x, y) => x.CommittedAtMs != y.CommittedAtMs
            ? x.CommittedAtMs.CompareTo(y.CommittedAtMs)
            : string.CompareOrdinal(x.OrderId, y.OrderId));
        var insert = new List<DeductionRecord>(candidates.Count);
        var refused = new List<RefusedOrder>();
        var left = Math.Max(0, available ?? 0);
        foreach (var record in candidates)
        {
            if (available is not null && record.Quantity <= left)
            {
                left -= record.Quantity;
                insert.Add(record);
            }
            else
            {
                refused.Add(new RefusedOrder(record, available is null ? null : left));
            }
        }

        return new FittedGroup(insert, refused);
    }

    /// <summary>
    /// Throws <see cref="ArgumentException"/> for a record the schema would refuse, or of another SKU than
    /// <paramref name="sku"/> (when given). <paramref name="bucketed"/> false accepts a record without a bucket (a
    /// database-mode order).
    /// </summary>
    /// <remarks>
    /// INSERT IGNORE also turns a too-long value into a silent truncation; checking here leaves it only duplicate
    /// keys to ignore.
    /// </remarks>
    public static void Check(DeductionRecord record, string? sku = null, bool bucketed = true)
    {
        ArgumentNullException.ThrowIfNull(record);
        CheckText(record.OrderId, nameof(record.OrderId));
        CheckText(record.RequestId, nameof(record.RequestId));
        CheckText(record.Sku, nameof(record.Sku));
        CheckText(record.UserId, nameof(record.UserId));
        if (sku is not null && !string.Equals(record.Sku, sku, StringComparison.Ordinal))
        {
            throw new ArgumentException($"Order '{record.OrderId}' is for SKU '{record.Sku}', not '{sku}': a group holds one SKU.", nameof(record));
        }

        if (record.Quantity < 1)
        {
            throw new ArgumentException($"Order '{record.OrderId}' has quantity {record.Quantity}; it must be at least 1.", nameof(record));
        }

        if (bucketed && record.Bucket < 0)
        {
            throw new ArgumentException($"Order '{record.OrderId}' has bucket {record.Bucket}; it must not be negative.", nameof(record));
        }

        if (record.CommittedAtMs < 0)
        {
            throw new ArgumentException($"Order '{record.OrderId}' has a negative CommittedAtMs.", nameof(record));
        }
    }

    /// <summary>
    /// The multi-row <c>INSERT IGNORE</c> of <paramref name="records"/> as new <c>pending_payment</c> orders: row i binds
    /// <c>@oi, @ri, @ui, @qi, @bi, @ti</c>, handed to <paramref name="bind"/>; the caller binds the shared <c>@sku</c>,
    /// <c>@status</c> and <c>@batch</c>. Used by the group commit and by database mode alike.
    /// </summary>
    internal static string InsertOrders(IReadOnlyList<DeductionRecord> records, Action<string, object> bind)
    {
        var insert = new StringBuilder(160 + records.Count * 64);
        insert.Append("INSERT IGNORE INTO orders (order_id, request_id, sku, user_id, quantity, bucket, status, commit_batch, committed_at_ms) VALUES");
        for (var i = 0; i < records.Count; i++)
        {
            var record = records[i];
            var n = i.ToString(CultureInfo.InvariantCulture);
            insert.Append(i == 0 ? "\n" : ",\n")
                .Append("(@o").Append(n).Append(", @r").Append(n).Append(", ").Append(Sku).Append(", @u").Append(n)
                .Append(", @q").Append(n).Append(", @b").Append(n).Append(", ").Append(Status).Append(", ").Append(Batch)
                .Append(", @t").Append(n).Append(')');
            bind("@o" + n, record.OrderId);
            bind("@r" + n, record.RequestId);
            bind("@u" + n, record.UserId);
            bind("@q" + n, record.Quantity);
            bind("@b" + n, record.Bucket);
            bind("@t" + n, record.CommittedAtMs);
        }

        return insert.ToString();
    }

    /// <summary>
    /// Units and rows this attempt inserted, among the orders bound as <c>@o0</c> … <c>@o{count-1}</c>: only rows
    /// inserted now carry the attempt's batch id (<c>@batch</c>); duplicates kept the id of the group that first
    /// stored them.
    /// </summary>
    internal static string SumInserted(int count)
    {
        var sql = new StringBuilder(96 + count * 7);
        sql.Append("SELECT COALESCE(SUM(quantity), 0), COUNT(*) FROM orders WHERE order_id IN (");
        for (var i = 0; i < count; i++)
        {
            sql.Append(i == 0 ? "@o" : ", @o").Append(i.ToString(CultureInfo.InvariantCulture));
        }

        return sql.Append(") AND commit_batch = ").Append(Batch).ToString();
    }

    // Unique per attempt, which is all the sum of the inserted rows needs; time-ordered (UUID v7) so ids sort by age
    // when an operator looks at groups.
    internal static string NewBatchId() => Guid.CreateVersion7().ToString("N");

    internal static void CheckText(string value, string name)
    {
        // string.Length counts UTF-16 units, never fewer than the characters VARCHAR(64) counts: safe side.
        if (string.IsNullOrEmpty(value) || value.Length > MaxTextLength)
        {
            throw new ArgumentException($"{name} must be 1 to {MaxTextLength} characters.", name);
        }
    }

    private static string Deduct(string hint) =>
        $"UPDATE {hint}inventory SET available_stock = available_stock - {UnitsParameter} WHERE sku = {Sku} AND available_stock >= {UnitsParameter}";
}
