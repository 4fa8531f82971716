using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using OrleansFlashSale.Persistence;
using OrleansFlashSale.Redis;

namespace OrleansFlashSale.Grains;

/// <summary>
/// Orders after the purchase. MySQL holds the truth once the pipeline wrote the order; before that, the Redis order
/// index answers "reserved". Cancel and expiry give the units back twice over, each exactly once: MySQL
/// (status change, log row and inventory in one transaction) first, then Redis (an idempotent return script into
/// the bucket fixed in that transaction); a return interrupted in between is finished by the next sweep.
/// </summary>
[StatelessWorker]
public sealed partial class OrdersGrain : Grain, IOrdersGrain
{
    private static readonly TimeSpan ReturnRetryAge = TimeSpan.FromSeconds(2);

    /// <summary>Bucket calls one return makes at most: a removed bucket on the way costs two (asked, then told where).</summary>
    private const int MaxReturnCalls = 16;

    /// <summary>Asks a bucket's return script to say whether it was removed rather than to send the units on.</summary>
    private const int NoLiveBucket = -1;

    /// <summary>Pages of due orders one sweep reads at most when refused orders fill them (10 × the sweep's limit).</summary>
    private const int MaxSweepPages = 10;

    private readonly IOrderLifecycleStore _store;
    private readonly RedisConnection _redis;
    private readonly SaleClock _time;
    private readonly ILogger<OrdersGrain> _logger;

    public OrdersGrain(IOrderLifecycleStore store, RedisConnection redis, SaleClock time, ILogger<OrdersGrain> logger)
    {
        _store = store;
        _redis = redis;
        _time = time;
        _logger = logger;
    }

    public async Task<OrderInfo?> GetAsync(string orderId)
    {
        if (await _store.GetAsync(orderId) is { } stored)
        {
            return ToInfo(stored);
        }

        if (RedisKeys.OrderIndex(orderId) is not { } key)
        {
            return null;
        }

        var db = await _redis.GetDatabaseAsync();
        var index = await db.HashGetAsync(key, orderId);
        if (index.IsNull)
        {
            return null;
        }

        // sku|bucket|quantity|requestId|userId (the user id last: it may contain '|').
        var parts = index.ToString().Split('|', 5);
        return parts.Length == 5 && int.TryParse(parts[1], out var bucket) && int.TryParse(parts[2], out var quantity)
            ? new OrderInfo(orderId, parts[0], parts[4], parts[3], quantity, OrderStatuses.Reserved, bucket)
            : null;
    }

    public async Task<OrderActionResult> PayAsync(string orderId, string userId)
    {
        var (order, early) = await LoadAsync(orderId, userId);
        if (early is not null)
        {
            return early;
        }

        if (order!.Status == OrderLifecycleStatuses.PendingPayment && await _store.MarkPaidAsync(orderId, userId))
        {
            return new OrderActionResult(OrderActionOutcome.Done, ToInfo(order with { Status = OrderLifecycleStatuses.Paid }), null);
        }

        var now = await _store.GetAsync(orderId) ?? order;
        return now.Status switch
        {
            OrderLifecycleStatuses.Paid => new OrderActionResult(OrderActionOutcome.AlreadyDone, ToInfo(now), null),
            OrderLifecycleStatuses.Cancelled => new OrderActionResult(OrderActionOutcome.Conflict, ToInfo(now), "order_cancelled"),
            OrderLifecycleStatuses.Expired => new OrderActionResult(OrderActionOutcome.Conflict, ToInfo(now), "order_expired"),
            _ => new OrderActionResult(OrderActionOutcome.Conflict, ToInfo(now), "order_changed"),
        };
    }

    public async Task<OrderActionResult> CancelAsync(string orderId, string userId)
    {
        var (order, early) = await LoadAsync(orderId, userId);
        if (early is not null)
        {
            return early;
        }

        if (order!.Status == OrderLifecycleStatuses.PendingPayment && await ReleaseAsync(order, OrderLifecycleStatuses.Cancelled))
        {
            return new OrderActionResult(OrderActionOutcome.Done, ToInfo(order with { Status = OrderLifecycleStatuses.Cancelled }), null);
        }

        var now = await _store.GetAsync(orderId) ?? order;
        return now.Status switch
        {
            OrderLifecycleStatuses.Cancelled => new OrderActionResult(OrderActionOutcome.AlreadyDone, ToInfo(now), null),
            OrderLifecycleStatuses.Paid => new OrderActionResult(OrderActionOutcome.Conflict, ToInfo(now), "order_paid"),
            OrderLifecycleStatuses.Expired => new OrderActionResult(OrderActionOutcome.Conflict, ToInfo(now), "order_expired"),
            _ => new OrderActionResult(OrderActionOutcome.Conflict, ToInfo(now), "order_changed"),
        };
    }

    public async Task<int> ExpireDueAsync(string? sku, int limit)
    {
        var expired = 0;
        var now = _time.UtcNow.ToUnixTimeMilliseconds();
        var (afterMs, afterId) = (-1L, "");
        for (var page = 0; page < MaxSweepPages; page++)
        {
            var due = await _store.FindExpiredAsync(sku, now, limit, afterMs, afterId);
            var refused = false;
            foreach (var order in due)
            {
                try
                {
                    if (await ReleaseAsync(order, OrderLifecycleStatuses.Expired))
                    {
                        expired++;
                    }
                }
                catch (Exception ex) when (MySqlTransactions.IsRefusal(ex))
                {
                    // A database that is away fails the whole sweep (the next one retries); this order's own refusal
                    // does not. Its transaction rolled back, so the order is still pending and the next sweep tries it
                    // again. The oldest due orders come first: one whose return the database refuses (a drifted
                    // inventory row) must not keep every order behind it, of every sale, from expiring.
                    LogExpiryFailed(_logger, ex, order.OrderId, order.Sku, this.GetPrimaryKeyLong());
                    refused = true;
                }
            }

            // A full page with refusals in it goes on past them: every later sweep would read the same refused orders
            // first, and a page's worth of them would hold back every order behind. Without refusals the next sweep
            // picks up where this one stopped.
            if (!refused || due.Count < limit)
            {
                break;
            }

            (afterMs, afterId) = (due[^1].CommittedAtMs, due[^1].OrderId);
        }

        foreach (var order in await _store.FindUnreturnedAsync(sku, ReturnRetryAge, limit))
        {
            await ReturnToRedisAsync(order, order.ReturnBucket ?? order.Bucket);
        }

        return expired;
    }

    private async Task<(StoredOrder? Order, OrderActionResult? Early)> LoadAsync(string orderId, string userId)
    {
        var order = await _store.GetAsync(orderId);
        if (order is null)
        {
            var reserved = await GetAsync(orderId);
            return (null, reserved is null
                ? new OrderActionResult(OrderActionOutcome.NotFound, null, "unknown_order")
                : reserved.UserId != userId
                    ? new OrderActionResult(OrderActionOutcome.Forbidden, null, "not_your_order")
                    : new OrderActionResult(OrderActionOutcome.NotReady, reserved, "order_not_ready"));
        }

        return order.UserId != userId
            ? (null, new OrderActionResult(OrderActionOutcome.Forbidden, null, "not_your_order"))
            : (order, null);
    }

    /// <summary>MySQL first (status, log, inventory in one transaction), then Redis; false if no longer pending.</summary>
    private async Task<bool> ReleaseAsync(StoredOrder order, string status)
    {
        // The units go back to the order's bucket, or, if re-bucketing removed it, to the bucket that took its stock
        // (a shrink after this moment is met by the return itself: ReturnToLiveBucketAsync). A database-mode order
        // (bucket -1) has no Redis stock to return to: MySQL's return is the whole return.
        var target = order.Bucket;
        if (order.Bucket >= 0)
        {
            var routing = await GrainFactory.Product(order.Sku).GetRoutingAsync([]);
            var count = Math.Max(1, routing?.BucketCount ?? 1);
            target = order.Bucket < count ? order.Bucket : order.Bucket % count;
        }

        if (!await _store.ReleaseAsync(order, status, target))
        {
            return false;
        }

        await ReturnToRedisAsync(order, target);
        return true;
    }

    private async Task ReturnToRedisAsync(StoredOrder order, int bucket)
    {
        try
        {
            // A negative bucket is a database-mode order: MySQL already has the units back, so only mark it done.
            if (bucket >= 0)
            {
                await ReturnToLiveBucketAsync(order, bucket);
            }

            await _store.MarkReturnedAsync(order.OrderId);
        }
        catch (Exception ex)
        {
            // MySQL has the units back; Redis gets them on the next sweep (the return script is idempotent).
            LogReturnFailed(_logger, ex, order.OrderId, order.Sku, bucket);
        }
    }

    /// <summary>
    /// Into <paramref name="bucket"/>, the one the release fixed in MySQL, unless re-bucketing removed it since (a
    /// shrink between the release and this call, or before a retry): a removed bucket takes nothing and the units go
    /// to a live one, the same for every retry (the removed bucket's script keeps it), so none end up in a key no
    /// bucket sells from.
    /// </summary>
    private async Task ReturnToLiveBucketAsync(StoredOrder order, int bucket)
    {
        var liveBucket = NoLiveBucket;
        for (var call = 0; call < MaxReturnCalls; call++)
        {
            var result = await GrainFactory.Bucket(order.Sku, bucket).ReturnAsync(order.OrderId, order.Quantity, liveBucket);
            if (result.Returned)
            {
                return;
            }

            if (result.MovedTo >= 0)
            {
                LogReturnMoved(_logger, order.OrderId, order.Sku, bucket, result.MovedTo);
                (bucket, liveBucket) = (result.MovedTo, NoLiveBucket);
            }
            else
            {
                liveBucket = await LiveBucketAsync(order.Sku, bucket);
            }
        }

        throw new InvalidOperationException($"Returning order {order.OrderId} of {order.Sku} reached no live bucket in {MaxReturnCalls} calls.");
    }

    /// <summary>The live bucket that takes a removed bucket's returns: its index mod the live count, as a shrink sends its stock.</summary>
    private async Task<int> LiveBucketAsync(string sku, int removed)
    {
        var count = (await GrainFactory.Product(sku).GetRoutingAsync([]))?.BucketCount ?? 0;
        if (count <= 0 || removed < count)
        {
            // Redis says removed, the layout says live (or has none): a re-bucketing is half done. The next sweep retries.
            throw new InvalidOperationException($"Bucket {sku}/{removed} is marked removed in Redis, yet the layout has {count} buckets.");
        }

        return removed % count;
    }

    private static OrderInfo ToInfo(StoredOrder o) => new(o.OrderId, o.Sku, o.UserId, o.RequestId, o.Quantity, o.Status, o.Bucket);

    [LoggerMessage(EventId = 5004, Level = LogLevel.Error, Message = "Order {OrderId} of {Sku} (orders grain {GrainKey}): expiring it failed in MySQL; it stays pending, the sweep goes on with the next order and tries this one again next time")]
    private static partial void LogExpiryFailed(ILogger logger, Exception exception, string orderId, string sku, long grainKey);

    [LoggerMessage(EventId = 5021, Level = LogLevel.Information, Message = "Order {OrderId} of {Sku}: bucket {Bucket} was removed by re-bucketing; its units go to bucket {Target}")]
    private static partial void LogReturnMoved(ILogger logger, string orderId, string sku, int bucket, int target);

    [LoggerMessage(EventId = 5001, Level = LogLevel.Warning, Message = "Order {OrderId} of {Sku}: returning its units to bucket {Bucket} failed; the next sweep retries")]
    private static partial void LogReturnFailed(ILogger logger, Exception exception, string orderId, string sku, int bucket);
}
