using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using OrleansFlashSale.Messaging;
using OrleansFlashSale.Persistence;
using OrleansFlashSale.Pipeline;
using OrleansFlashSale.Redis;
using StackExchange.Redis;

namespace OrleansFlashSale.Grains;

/// <summary>
/// Reconciles one sale across Redis (stock, the buckets' logs and how many orders each ever logged, order proofs),
/// JetStream (half messages, dead letters, check-max, the writer's backlog) and MySQL (orders, inventory, inventory
/// log). Reads only, unless asked to repair: then it re-publishes log entries whose order never reached MySQL and
/// trims those that did.
/// </summary>
/// <remarks>
/// Only durable counts decide drift: the stock keys, each log stream's entries-added and MySQL's rows. Order markers
/// and request records expire with the records' TTL, so a full verify reads them only to name suspects.
/// </remarks>
[StatelessWorker]
public sealed partial class ReconciliationGrain : Grain, IReconciliationGrain
{
    /// <summary>Ids listed per drift kind; the counts are always complete.</summary>
    public const int MaxListedIds = 100;

    /// <summary>A log entry younger than this is still on its way (half message, bridge, writer), not lost.</summary>
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(10);

    private static readonly string[] LiveStatuses = [OrderRowStatus.PendingPayment, OrderRowStatus.Paid];

    private readonly RedisConnection _redis;
    private readonly IPipelineQueue _queue;
    private readonly IOrderReadStore _orders;
    private readonly IOrderLifecycleStore _sales;
    private readonly ILogger<ReconciliationGrain> _logger;

    public ReconciliationGrain(RedisConnection redis, IPipelineQueue queue, IOrderReadStore orders,
        IOrderLifecycleStore sales, ILogger<ReconciliationGrain> logger)
    {
        _sales = sales;
        _redis = redis;
        _queue = queue;
        _orders = orders;
        _logger = logger;
    }

    public async Task<string[]> ListSkusAsync() => [.. await _sales.ListSalesAsync()];

    public Task<ReconciliationReport?> VerifyAsync(string sku, bool repair) => ReconcileAsync(sku, proofs: true, repair);

    public Task<ReconciliationReport?> SummarizeAsync(string sku) => ReconcileAsync(sku, proofs: false, repair: false);

    private async Task<ReconciliationReport?> ReconcileAsync(string sku, bool proofs, bool repair)
    {
        var product = GrainFactory.Product(sku);
        var definitionTask = product.GetDefinitionAsync();
        var bucketsTask = product.GetHighestBucketCountAsync();
        await Task.WhenAll(definitionTask, bucketsTask);
        if (await definitionTask is not { } sale)
        {
            return null;
        }

        var buckets = await bucketsTask;

        // A database-mode sale deducts in MySQL itself: there are no buckets, logs or Redis stock to compare, so its
        // stock store is MySQL's available_stock and only the inventory equation has something to say.
        var databaseMode = sale.Mode == SaleModes.Database;

        // Redis first, MySQL after: an entry forwarded and written while we look is then found in MySQL, never
        // reported missing. The logged counts are read once more after MySQL: every order MySQL returned was logged
        // before, so that second count covers it; and a count that moved means purchases arrived while we looked.
        // JetStream counts are independent and fetched alongside.
        var messagesTask = ReadMessagesAsync(sku);
        var redis = await ReadRedisAsync(sku, buckets);
        var mysql = await _orders.ReadSaleAsync(sku, [.. redis.Log.Select(e => e.Record.OrderId)], withOrders: proofs && !databaseMode);
        var logged = await ReadLoggedAsync(sku, buckets);
        var messages = await messagesTask;

        var pending = new List<LogEntry>();
        var missing = new List<LogEntry>();
        var untrimmed = new List<LogEntry>();
        // An order may have more than one entry (a bucket logs it once, but an untrimmed entry plus a re-added
        // one, or a replayed repair, can coexist): judge and repair per order, trim per entry.
        foreach (var order in redis.Log.GroupBy(e => e.Record.OrderId, StringComparer.Ordinal))
        {
            if (mysql.StoredLogOrders.Contains(order.Key))
            {
                untrimmed.AddRange(order);
            }
            // The oldest entry says how long the order has been on its way.
            else if (redis.NowMs - order.Min(e => e.Record.CommittedAtMs) < Grace.TotalMilliseconds)
            {
                pending.Add(order.First());
            }
            else
            {
                missing.Add(order.First());
            }
        }

        // Orders MySQL holds beyond what a bucket ever logged were never committed by Redis.
        var excess = databaseMode
            ? new Dictionary<int, long>()
            : mysql.OrdersPerBucket
                .Select(b => (Bucket: b.Key, Extra: b.Value - (b.Key >= 0 && b.Key < logged.Length ? logged[b.Key] : 0)))
                .Where(b => b.Extra > 0)
                .ToDictionary(b => b.Bucket, b => b.Extra);
        var (unknown, withoutProof) = await CheckProofsAsync(sku, mysql.Orders, excess);

        // This sale has nothing on its way when no purchase landed while we read and MySQL holds at least every order
        // each bucket logged; then the writer's backlog (which is every SKU's) cannot be this sale's.
        var quiet = databaseMode || logged.SequenceEqual(redis.Logged);
        var persisted = databaseMode || Enumerable.Range(0, buckets).All(b => mysql.OrdersPerBucket.GetValueOrDefault(b) >= redis.Logged[b]);

        var liveUnits = mysql.ByStatus.Where(s => LiveStatuses.Contains(s.Status)).Sum(s => s.Units);
        var stockLeft = databaseMode ? mysql.Available ?? 0 : redis.Remaining;
        var redisEquation = new ReconciliationEquation(
            databaseMode ? "mysql available_stock + mysql live units == stock (database mode)" : "redis remaining + mysql live units == stock",
            stockLeft + liveUnits, sale.Stock, stockLeft + liveUnits == sale.Stock);
        var inventoryEquation = new ReconciliationEquation("mysql available_stock == stock - live units",
            mysql.Available ?? -1, sale.Stock - liveUnits, mysql.Available == sale.Stock - liveUnits);

        // In flight: purchases landing while we read, entries inside the grace period, half messages not yet
        // resolved, orders the writer has yet to store. Until those settle the equations are expected to be off.
        var atRest = quiet && pending.Count == 0 && messages.HalfMessagesForSku == 0 && (persisted || messages.WriterPending == 0);
        var problems = new List<string>();
        if (atRest && !redisEquation.Holds)
        {
            problems.Add($"{redisEquation.Text}: {redisEquation.Left} != {redisEquation.Right}");
        }

        if (atRest && !inventoryEquation.Holds)
        {
            problems.Add(mysql.Available is null
                ? "no inventory row in MySQL"
                : $"{inventoryEquation.Text}: {inventoryEquation.Left} != {inventoryEquation.Right}");
        }

        if (missing.Count > 0)
        {
            problems.Add($"{missing.Count} orders deducted in Redis are missing in MySQL");
        }

        if (unknown.Count > 0)
        {
            problems.Add($"{unknown.Count} orders in MySQL are unknown to Redis (more than their bucket ever logged)");
        }

        var removedUnits = databaseMode ? 0 : await ReadRemovedBucketUnitsAsync(product, await _redis.GetDatabaseAsync(), sku);
        if (removedUnits > 0)
        {
            problems.Add($"{removedUnits} units in buckets removed by re-bucketing, outside the live layout");
        }

        if (messages.DeadLettersForSku > 0)
        {
            problems.Add($"{messages.DeadLettersForSku} dead letters in {_queue.DeadLetterName}");
        }

        if (messages.CheckMaxForSku > 0)
        {
            problems.Add($"{messages.CheckMaxForSku} unresolved half messages in {_queue.CheckMaxName}");
        }

        ReconciliationRepair? repaired = null;
        if (repair)
        {
            repaired = await RepairAsync(sku, missing, untrimmed);
        }

        var report = new ReconciliationReport(
            sku,
            sale.Stock,
            buckets,
            redis.Remaining,
            sale.Stock - redis.Remaining,
            [.. mysql.ByStatus],
            liveUnits,
            mysql.Available,
            mysql.LogRows,
            redisEquation,
            inventoryEquation,
            List(pending.Select(e => e.Record.OrderId)),
            List(missing.Select(e => e.Record.OrderId)),
            unknown,
            untrimmed.Count,
            messages,
            atRest,
            problems.Count > 0,
            [.. problems],
            repaired,
            pending.Count + missing.Count == 0
                ? null
                : redis.NowMs - pending.Concat(missing).Min(e => e.Record.CommittedAtMs),
            databaseMode ? null : logged.Sum(),
            withoutProof,
            removedUnits);
        if (proofs)
        {
            ReconciliationLog.Verified(_logger, sku, report.Drift, missing.Count, unknown.Count, pending.Count, repaired?.Republished ?? 0, repaired?.Trimmed ?? 0);
        }
        else
        {
            ReconciliationLog.Summarized(_logger, sku, report.Drift, report.AtRest);
        }

        return report;
    }

    /// <summary>
    /// The orders unknown to Redis (counted from <paramref name="excess"/>; named, when <paramref name="orders"/> were
    /// read, by their missing proof) and how many other orders have outlived their proof. Two GETs per order.
    /// </summary>
    private async Task<(OrderIdList Unknown, long? WithoutProof)> CheckProofsAsync(string sku, Dictionary<string, OrderProofKey>? orders, Dictionary<int, long> excess)
    {
        var count = excess.Values.Sum();
        if (orders is null)
        {
            return (new OrderIdList(count, []), null);
        }

        var db = await _redis.GetDatabaseAsync();
        var stored = orders.ToArray();
        var proven = await Task.WhenAll(stored.Select(o => HasProofAsync(db, sku, o.Key, o.Value)));
        var unproven = stored.Where((_, i) => !proven[i]).ToList();
        // In a bucket whose counts balance, a missing proof has expired: every one of its orders was logged.
        var suspects = unproven.Where(o => excess.ContainsKey(o.Value.Bucket)).Select(o => o.Key).Order(StringComparer.Ordinal);
        return (new OrderIdList(count, [.. suspects.Take(MaxListedIds)]), unproven.Count(o => !excess.ContainsKey(o.Value.Bucket)));
    }

    /// <summary>
    /// Units in the buckets past the live count, up to the most the sale ever had. 0 when the layout changed while
    /// they were read: a grow in progress gives units to buckets this read still took for removed.
    /// </summary>
    private static async Task<long> ReadRemovedBucketUnitsAsync(IProductGrain product, IDatabase db, string sku)
    {
        var layout = await product.GetRoutingAsync([]);
        if (layout is null || layout.HighestBucketCount <= layout.BucketCount)
        {
            return 0;
        }

        var stocks = await Task.WhenAll(Enumerable.Range(layout.BucketCount, layout.HighestBucketCount - layout.BucketCount)
            .Select(b => db.StringGetAsync(RedisKeys.Stock(sku, b))));
        return (await product.GetRoutingAsync([]))?.LayoutVersion == layout.LayoutVersion
            ? stocks.Sum(v => v.IsNull ? 0L : (long)v)
            : 0;
    }

    private async Task<ReconciliationRepair> RepairAsync(string sku, List<LogEntry> missing, List<LogEntry> untrimmed)
    {
        // The streams exist: ReadMessagesAsync ensured them before any repair is decided.
        var subject = _queue.DeductionsSubject(sku);
        var republished = 0;
        foreach (var entry in missing)
        {
            var message = PipelineJson.ToMessage(entry.Record, subject);
            var stored = await PublishAsync(message);
            if (!stored)
            {
                // The original message is still inside the duplicate window, so JetStream keeps the first copy and
                // drops this one; yet the order is not in MySQL (dead-lettered, or the row was lost). A second id
                // per log entry gets it through once; the writer ignores an order it already stored.
                stored = await PublishAsync(message with { MessageId = $"{entry.Record.OrderId}.repair.{entry.EntryId}" });
            }

            if (stored)
            {
                republished++;
                ReconciliationLog.Republished(_logger, sku, entry.Record.OrderId, entry.Record.Bucket);
            }
        }

        // Entries whose order is stored are done with; the bridge failed to trim them (or a repair just healed them).
        var trimmed = 0;
        var db = await _redis.GetDatabaseAsync();
        var deleted = await Task.WhenAll(untrimmed.GroupBy(e => e.Record.Bucket).Select(g =>
            db.StreamDeleteAsync(RedisKeys.Log(sku, g.Key), g.Select(e => (RedisValue)e.EntryId).ToArray())));
        trimmed += (int)deleted.Sum();
        return new ReconciliationRepair(republished, trimmed);
    }

    private static OrderIdList List(IEnumerable<string> ids)
    {
        var all = ids.ToList();
        return new OrderIdList(all.Count, [.. all.Take(MaxListedIds)]);
    }
}

internal static partial class ReconciliationLog
{
    [LoggerMessage(EventId = 5011, Level = LogLevel.Information, Message = "Verify {Sku}: drift {Drift}, {Missing} missing in MySQL, {Unknown} unknown to Redis, {Pending} in flight; republished {Republished}, trimmed {Trimmed}")]
    public static partial void Verified(ILogger logger, string sku, bool drift, int missing, long unknown, int pending, int republished, int trimmed);

    [LoggerMessage(EventId = 5012, Level = LogLevel.Warning, Message = "Verify {Sku}: order {OrderId} of bucket {Bucket} re-published to the deductions stream")]
    public static partial void Republished(ILogger logger, string sku, string orderId, int bucket);

    [LoggerMessage(EventId = 5010, Level = LogLevel.Warning, Message = "Verify (grain {GrainKey}): NATS did not {What} within {Budget}; the caller is told NATS is unavailable")]
    public static partial void NatsTimedOut(ILogger logger, Exception exception, long grainKey, string what, TimeSpan budget);

    // Dashboards poll summaries every few seconds: not worth an information line each.
    [LoggerMessage(EventId = 5013, Level = LogLevel.Debug, Message = "Summary of {Sku}: drift {Drift}, at rest {AtRest}")]
    public static partial void Summarized(ILogger logger, string sku, bool drift, bool atRest);
}
