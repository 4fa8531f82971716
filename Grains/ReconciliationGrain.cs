using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MySqlConnector;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using Orleans.Concurrency;
using OrleansFlashSale.Grains.Messaging;
using OrleansFlashSale.Grains.Persistence;
using OrleansFlashSale.Grains.Pipeline;
using OrleansFlashSale.Grains.Redis;
using StackExchange.Redis;

namespace OrleansFlashSale.Grains;

/// <summary>
/// Reconciles one sale across Redis (stock, order markers, un-forwarded log entries), JetStream (half messages, dead
/// letters, check-max, the writer's backlog) and MySQL (orders, inventory, inventory log). Reads only, unless asked
/// to repair: then it re-publishes log entries whose order never reached MySQL and trims those that did.
/// </summary>
[StatelessWorker]
public sealed class ReconciliationGrain : Grain, IReconciliationGrain
{
    /// <summary>Ids listed per drift kind; the counts are always complete.</summary>
    public const int MaxListedIds = 100;

    /// <summary>A log entry younger than this is still on its way (half message, bridge, writer), not lost.</summary>
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(10);

    private const string WriterConsumer = "orders-writer";

    // Reading a side stream's payloads to count per SKU is cheap while it is small, which it is when healthy.
    private const int MaxMessagesReadPerStream = 10_000;

    private const int LogPageSize = 1000;

    private static readonly string[] LiveStatuses = [OrderRowStatus.PendingPayment, OrderRowStatus.Paid];

    private readonly RedisConnection _redis;
    private readonly JetStreamConnection _nats;
    private readonly OrderStoreOptions _store;
    private readonly ILogger<ReconciliationGrain> _logger;

    public ReconciliationGrain(RedisConnection redis, JetStreamConnection nats, IOptions<OrderStoreOptions> store, ILogger<ReconciliationGrain> logger)
    {
        _redis = redis;
        _nats = nats;
        _store = store.Value;
        _logger = logger;
    }

    public async Task<string[]> ListSkusAsync()
    {
        await using var connection = await OpenAsync();
        await using var command = new MySqlCommand("SELECT sku FROM inventory ORDER BY sku", connection);
        var skus = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            skus.Add(reader.GetString(0));
        }

        return [.. skus];
    }

    public async Task<ReconciliationReport?> VerifyAsync(string sku, bool repair)
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

        // Redis first, MySQL after: an entry forwarded and written while we look is then found in MySQL, never
        // reported missing. JetStream counts are independent and fetched alongside.
        var redisTask = ReadRedisAsync(sku, buckets);
        var messagesTask = ReadMessagesAsync(sku);
        var redis = await redisTask;
        var mysql = await ReadMySqlAsync(sku);
        var messages = await messagesTask;

        // The script that deducts an order also writes its proof, so every stored order must have one.
        var db = await _redis.GetDatabaseAsync();
        var storedOrders = mysql.Orders.ToArray();
        // A database-mode sale deducts in MySQL itself: there are no buckets, markers or Redis stock to compare,
        // so its stock store is MySQL's available_stock and only the inventory equation has something to say.
        var databaseMode = sale.Mode == SaleModes.Database;
        var markers = databaseMode
            ? storedOrders.Select(_ => true).ToArray()
            : await Task.WhenAll(storedOrders.Select(o => HasProofAsync(db, sku, o.Key, o.Value)));
        var unknown = storedOrders.Where((_, i) => !markers[i]).Select(o => o.Key).Order(StringComparer.Ordinal).ToList();

        var pending = new List<LogEntry>();
        var missing = new List<LogEntry>();
        var untrimmed = new List<LogEntry>();
        // An order may have more than one entry (a bucket logs it once, but an untrimmed entry plus a re-added
        // one, or a replayed repair, can coexist): judge and repair per order, trim per entry.
        foreach (var order in redis.Log.GroupBy(e => e.Record.OrderId, StringComparer.Ordinal))
        {
            if (mysql.Orders.ContainsKey(order.Key))
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

        var liveUnits = mysql.ByStatus.Where(s => LiveStatuses.Contains(s.Status)).Sum(s => s.Units);
        var stockLeft = databaseMode ? mysql.Available ?? 0 : redis.Remaining;
        var redisEquation = new ReconciliationEquation(
            databaseMode ? "mysql available_stock + mysql live units == stock (database mode)" : "redis remaining + mysql live units == stock",
            stockLeft + liveUnits, sale.Stock, stockLeft + liveUnits == sale.Stock);
        var inventoryEquation = new ReconciliationEquation("mysql available_stock == stock - live units",
            mysql.Available ?? -1, sale.Stock - liveUnits, mysql.Available == sale.Stock - liveUnits);

        // In flight: entries inside the grace period, half messages not yet resolved, orders the writer has yet
        // to store. Until those settle the equations are expected to be off.
        var atRest = pending.Count == 0 && messages.HalfMessagesForSku == 0 && messages.WriterPending == 0;
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
            problems.Add($"{unknown.Count} orders in MySQL are unknown to Redis");
        }

        var removedUnits = databaseMode ? 0 : await ReadRemovedBucketUnitsAsync(product, db, sku);
        if (removedUnits > 0)
        {
            problems.Add($"{removedUnits} units in buckets removed by re-bucketing, outside the live layout");
        }

        if (messages.DeadLettersForSku > 0)
        {
            problems.Add($"{messages.DeadLettersForSku} dead letters in {_nats.Topology.DeadLetterStream}");
        }

        if (messages.CheckMaxForSku > 0)
        {
            problems.Add($"{messages.CheckMaxForSku} unresolved half messages in {_nats.Topology.CheckMaxStream}");
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
            List(unknown),
            untrimmed.Count,
            messages,
            atRest,
            problems.Count > 0,
            [.. problems],
            repaired,
            pending.Count + missing.Count == 0
                ? null
                : redis.NowMs - pending.Concat(missing).Min(e => e.Record.CommittedAtMs),
            removedUnits);
        ReconciliationLog.Verified(_logger, sku, report.Drift, missing.Count, unknown.Count, pending.Count, repaired?.Republished ?? 0, repaired?.Trimmed ?? 0);
        return report;
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
        var subject = _nats.Topology.Deductions(sku);
        var republished = 0;
        foreach (var entry in missing)
        {
            var message = PipelineJson.ToMessage(entry.Record, subject);
            var ack = await PublishAsync(message);
            if (ack.Duplicate)
            {
                // The original message is still inside the duplicate window, so JetStream keeps the first copy and
                // drops this one; yet the order is not in MySQL (dead-lettered, or the row was lost). A second id
                // per log entry gets it through once; the writer ignores an order it already stored.
                ack = await PublishAsync(message with { MessageId = $"{entry.Record.OrderId}.repair.{entry.EntryId}" });
            }

            if (!ack.Duplicate)
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

    private async Task<PubAckResponse> PublishAsync(OutgoingMessage message)
    {
        var ack = await WithNatsDeadlineAsync(_nats.Options.OperationTimeout, "store a republished order",
            ct => _nats.JetStream.PublishAsync(message.Subject, message.Payload, opts: new NatsJSPubOpts { MsgId = message.MessageId }, cancellationToken: ct).AsTask());
        if (ack.Error is { } error)
        {
            throw new NatsJSApiException(error);
        }

        return ack;
    }

    private async Task<RedisView> ReadRedisAsync(string sku, int buckets)
    {
        var db = await _redis.GetDatabaseAsync();

        // The scripts' clock, not the silo's: log entries carry Redis TIME, and silo clocks may differ (or be fake).
        var time = (RedisResult[])(await db.ExecuteAsync("TIME"))!;
        var nowMs = (long)time[0] * 1000 + (long)time[1] / 1000;
        var perBucket = await Task.WhenAll(Enumerable.Range(0, buckets).Select(async b =>
        {
            var stockTask = db.StringGetAsync(RedisKeys.Stock(sku, b));
            var logTask = ReadLogAsync(db, sku, b);
            await Task.WhenAll(stockTask, logTask);
            var stock = await stockTask;
            return (Stock: stock.IsNull ? 0L : (long)stock, Log: await logTask);
        }));
        return new RedisView(perBucket.Sum(b => b.Stock), perBucket.SelectMany(b => b.Log).ToList(), nowMs);
    }

    private static async Task<List<LogEntry>> ReadLogAsync(IDatabase db, string sku, int bucket)
    {
        var key = RedisKeys.Log(sku, bucket);
        var entries = new List<LogEntry>();
        RedisValue from = "-";
        while (true)
        {
            var page = await db.StreamRangeAsync(key, from, "+", LogPageSize);
            foreach (var e in page)
            {
                if (ToRecord(sku, bucket, e) is { } record)
                {
                    entries.Add(new LogEntry(e.Id.ToString(), record));
                }
            }

            if (page.Length < LogPageSize)
            {
                return entries;
            }

            // Exclusive start: "(" + id, so the last entry of this page is not read twice.
            from = "(" + page[^1].Id;
        }
    }

    /// <summary>A log entry as the deduction script writes it: o, u, r, q, b, t.</summary>
    private static DeductionRecord? ToRecord(string sku, int bucket, StreamEntry entry)
    {
        var orderId = (string?)entry["o"];
        if (string.IsNullOrEmpty(orderId) || !int.TryParse((string?)entry["q"], NumberStyles.None, CultureInfo.InvariantCulture, out var quantity))
        {
            return null;
        }

        var committedAt = long.TryParse((string?)entry["t"], NumberStyles.None, CultureInfo.InvariantCulture, out var t)
            ? t
            // The entry id starts with the Redis time in milliseconds.
            : long.Parse(entry.Id.ToString().Split('-')[0], CultureInfo.InvariantCulture);
        return new DeductionRecord(orderId, (string?)entry["r"] ?? "", sku, (string?)entry["u"] ?? "", quantity, bucket, committedAt);
    }

    private async Task<MySqlView> ReadMySqlAsync(string sku)
    {
        // One connection, statements one after another: a MySQL connection runs one command at a time.
        await using var connection = await OpenAsync();
        var byStatus = new List<OrderStatusUnits>();
        await using (var command = Command(connection, "SELECT status, COUNT(*), COALESCE(SUM(quantity), 0) FROM orders WHERE sku = @sku GROUP BY status ORDER BY status", sku))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                byStatus.Add(new OrderStatusUnits(reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2)));
            }
        }

        long? available = null;
        await using (var command = Command(connection, "SELECT available_stock FROM inventory WHERE sku = @sku", sku))
        {
            if (await command.ExecuteScalarAsync() is long value)
            {
                available = value;
            }
        }

        long logRows;
        await using (var command = Command(connection, "SELECT COUNT(*) FROM inventory_log WHERE sku = @sku", sku))
        {
            logRows = Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
        }

        var orders = new Dictionary<string, StoredOrder>(StringComparer.Ordinal);
        await using (var command = Command(connection, "SELECT order_id, bucket, user_id, request_id FROM orders WHERE sku = @sku", sku))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                orders[reader.GetString(0)] = new StoredOrder(reader.GetInt32(1), reader.GetString(2), reader.GetString(3));
            }
        }

        return new MySqlView(byStatus, available, logRows, orders);
    }

    private Task<PipelineMessageCounts> ReadMessagesAsync(string sku) =>
        WithNatsDeadlineAsync(ReadCountsBudget, "read the message counts", async ct =>
        {
            await _nats.EnsureStreamsAsync(ct);
            var t = _nats.Topology;
            var halfTask = CountAsync(t.HalfStream, sku, ct);
            var deadTask = CountAsync(t.DeadLetterStream, sku, ct);
            var checkMaxTask = CountAsync(t.CheckMaxStream, sku, ct);
            var writerTask = WriterPendingAsync(ct);
            await Task.WhenAll(halfTask, deadTask, checkMaxTask, writerTask);
            var (half, dead, checkMax) = (await halfTask, await deadTask, await checkMaxTask);
            return new PipelineMessageCounts(half.Total, half.ForSku, dead.Total, dead.ForSku, checkMax.Total, checkMax.ForSku,
                await writerTask, half.PerSku && dead.PerSku && checkMax.PerSku);
        });

    /// <summary>
    /// Runs a NATS operation of verify with a deadline. NATS.Net waits through a disconnection for as long as it
    /// lasts; verify answers instead, with a NATS failure the gateway turns into 503, well inside the caller's own
    /// timeout (the command line gives up after 30 s).
    /// </summary>
    private async Task<T> WithNatsDeadlineAsync<T>(TimeSpan budget, string what, Func<CancellationToken, Task<T>> operation)
    {
        using var deadline = new CancellationTokenSource(budget);
        try
        {
            return await operation(deadline.Token);
        }
        catch (OperationCanceledException ex) when (deadline.IsCancellationRequested)
        {
            ReconciliationLog.NatsTimedOut(_logger, ex, this.GetPrimaryKeyLong(), what, budget);
            throw new DependencyUnavailableException("nats", nameof(TimeoutException), $"NATS did not {what} within {budget.TotalSeconds:0.#} s.");
        }
    }

    /// <summary>Three JetStream operations' worth: stream info, then reading up to three streams side by side.</summary>
    private TimeSpan ReadCountsBudget => _nats.Options.OperationTimeout * 3;

    private async Task<long> WriterPendingAsync(CancellationToken ct)
    {
        try
        {
            var consumer = await _nats.JetStream.GetConsumerAsync(_nats.Topology.DeductionsStream, WriterConsumer, ct);
            return (long)consumer.Info.NumPending + consumer.Info.NumAckPending;
        }
        catch (NatsJSApiException ex) when (ex.Error.Code == 404)
        {
            // No writer has started yet: everything in the stream is pending.
            var stream = await _nats.JetStream.GetStreamAsync(_nats.Topology.DeductionsStream, cancellationToken: ct);
            return (long)stream.Info.State.Messages;
        }
    }

    /// <summary>Messages in a stream overall, and those whose payload names <paramref name="sku"/> when few enough to read.</summary>
    private async Task<(long Total, long ForSku, bool PerSku)> CountAsync(string streamName, string sku, CancellationToken ct)
    {
        var stream = await _nats.JetStream.GetStreamAsync(streamName, cancellationToken: ct);
        var total = (long)stream.Info.State.Messages;
        if (total == 0)
        {
            return (0, 0, true);
        }

        if (total > MaxMessagesReadPerStream)
        {
            return (total, total, false);
        }

        // An ordered consumer is ephemeral and server-side cheap; it reads what is there now and goes away.
        var consumer = await _nats.JetStream.CreateOrderedConsumerAsync(streamName, cancellationToken: ct);
        var lastSequence = stream.Info.State.LastSeq;
        var (read, forSku) = (0L, 0L);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        try
        {
            await foreach (var message in consumer.ConsumeAsync<byte[]>(cancellationToken: timeout.Token))
            {
                read++;
                if (SkuOf(message.Data) == sku)
                {
                    forSku++;
                }

                // The last sequence may itself have been deleted (resolved half messages are), hence the count too.
                if (read >= total || (message.Metadata?.Sequence.Stream ?? ulong.MaxValue) >= lastSequence)
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            // Messages removed while reading (half messages resolve all the time): what was read is the answer.
        }

        return (total, forSku, true);
    }

    /// <summary>The <c>sku</c> member of a JSON payload (deduction records and half payloads both carry one).</summary>
    private static string? SkuOf(byte[]? data)
    {
        if (data is null || data.Length == 0)
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(data);
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.NameEquals("sku") || property.NameEquals("Sku"))
                {
                    return property.Value.GetString();
                }
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // Unreadable payloads belong to no SKU; the overall count still shows them.
        }

        return null;
    }

    private async Task<MySqlConnection> OpenAsync()
    {
        var connection = new MySqlConnection(_store.ConnectionString);
        await connection.OpenAsync();
        return connection;
    }

    private static MySqlCommand Command(MySqlConnection connection, string sql, string sku)
    {
        var command = new MySqlCommand(sql, connection);
        command.Parameters.AddWithValue("@sku", sku);
        return command;
    }

    private static OrderIdList List(IEnumerable<string> ids)
    {
        var all = ids.ToList();
        return new OrderIdList(all.Count, [.. all.Take(MaxListedIds)]);
    }

    /// <summary>
    /// An overflow deduction (deduct.lua) leaves its order marker; a home purchase (purchase.lua) leaves the request
    /// record in its bucket's slot, naming the order. Either proves Redis committed the order.
    /// </summary>
    private static async Task<bool> HasProofAsync(IDatabase db, string sku, string orderId, StoredOrder order)
    {
        var marker = db.StringGetAsync(RedisKeys.OrderMarker(sku, order.Bucket, orderId));
        var record = db.StringGetAsync(RedisKeys.Request(sku, order.Bucket, order.UserId, order.RequestId));
        return await marker == OrderProof.Marker
            || (await record is { IsNull: false } value && value.ToString().StartsWith(OrderProof.RecordPrefix(orderId), StringComparison.Ordinal));
    }

    private sealed record LogEntry(string EntryId, DeductionRecord Record);

    private sealed record RedisView(long Remaining, List<LogEntry> Log, long NowMs);

    private sealed record MySqlView(List<OrderStatusUnits> ByStatus, long? Available, long LogRows, Dictionary<string, StoredOrder> Orders);

    private sealed record StoredOrder(int Bucket, string UserId, string RequestId);
}

internal static partial class ReconciliationLog
{
    [LoggerMessage(EventId = 5011, Level = LogLevel.Information, Message = "Verify {Sku}: drift {Drift}, {Missing} missing in MySQL, {Unknown} unknown to Redis, {Pending} in flight; republished {Republished}, trimmed {Trimmed}")]
    public static partial void Verified(ILogger logger, string sku, bool drift, int missing, int unknown, int pending, int republished, int trimmed);

    [LoggerMessage(EventId = 5012, Level = LogLevel.Warning, Message = "Verify {Sku}: order {OrderId} of bucket {Bucket} re-published to the deductions stream")]
    public static partial void Republished(ILogger logger, string sku, string orderId, int bucket);

    [LoggerMessage(EventId = 5010, Level = LogLevel.Warning, Message = "Verify (grain {GrainKey}): NATS did not {What} within {Budget}; the caller is told NATS is unavailable")]
    public static partial void NatsTimedOut(ILogger logger, Exception exception, long grainKey, string what, TimeSpan budget);
}
