using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;
using OrleansFlashSale.Grains.Persistence;
using OrleansFlashSale.Grains.Redis;
using StackExchange.Redis;

namespace OrleansFlashSale.Grains;

/// <summary>
/// Front door of a purchase for the users of one quota shard.
/// </summary>
/// <remarks>
/// A purchase is three steps, each idempotent:
/// 1. reserve: in the shard's hash slot, look up the request record (a replay gets the original order), check the
///    user's units against the limit and reserve them under a new order id (record state R);
/// 2. deduct: ask buckets, the user's preferred one first, then siblings with stock, until one deducts the order;
///    a bucket refuses an order id it already deducted twice;
/// 3. settle: mark the record done (D, with the bucket) or, when no bucket could serve it, give the units back.
/// A crash between steps can only leave units reserved (the user is under-served, never oversold); a replay of
/// such a request looks for the order in every bucket and finishes the job.
/// Reentrant: purchases interleave while Redis answers, and one pump batches the shard's script calls.
/// A database-mode sale keeps steps 1 and 3 and replaces the buckets of step 2 with one deduction in MySQL
/// (<see cref="DatabaseDeductor"/>), awaited before the buyer is answered; its orders carry bucket -1.
/// </remarks>
[Reentrant]
public sealed class QuotaGrain : Grain, IQuotaGrain
{
    private static readonly TimeSpan RoutingMaxAge = TimeSpan.FromSeconds(1);
    private const int BucketCallsInFlight = 2;

    private readonly RedisConnection _redis;
    private readonly RedisScripts _scripts;
    private readonly DeductionOptions _options;
    private readonly FlashSaleMetrics _metrics;
    private readonly SaleClock _time;
    private readonly ILogger<QuotaGrain> _logger;
    private readonly DatabaseDeductor _database;
    private readonly Dictionary<(string User, string Request), Task<PurchaseResult>> _inFlight = new();
    private readonly Queue<Reservation> _reservations = new();
    private readonly Queue<Settlement> _settlements = new();
    private readonly Dictionary<int, BucketCalls> _bucketCalls = new();
    private string _sku = "";
    private int _shard;
    private SaleDefinition? _sale;
    private BucketRouting? _routing;
    private long _routingFetchedAt;
    private Task? _pump;
    private bool _pumping;
    private HashSet<string>? _buyers;
    private Task<HashSet<string>>? _buyersLoad;

    public QuotaGrain(RedisConnection redis, RedisScripts scripts, IOptions<DeductionOptions> options,
        FlashSaleMetrics metrics, SaleClock time, ILogger<QuotaGrain> logger, DatabaseDeductor database)
    {
        _database = database;
        _redis = redis;
        _scripts = scripts;
        _options = options.Value;
        _metrics = metrics;
        _time = time;
        _logger = logger;
    }

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _shard = checked((int)this.GetPrimaryKeyLong(out var sku));
        _sku = sku ?? throw new InvalidOperationException("A quota grain needs the SKU as key extension.");
        return Task.CompletedTask;
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        // Settlements still queued are written before the activation goes; a crash instead leaves them to replays.
        if (_pump is { } pump)
        {
            await pump.WaitAsync(cancellationToken);
        }

        foreach (var calls in _bucketCalls.Values)
        {
            await calls.WhenIdle().WaitAsync(cancellationToken);
        }
    }

    public Task SaleChangedAsync(SaleDefinition sale)
    {
        _sale = sale;
        return Task.CompletedTask;
    }

    public async Task<long> GetUserUnitsAsync(string userId)
    {
        var db = await _redis.GetDatabaseAsync();
        var value = await db.StringGetAsync(RedisKeys.UserUnits(_sku, _shard, userId));
        return value.IsNull ? 0 : (long)value;
    }

    public async Task<PurchaseResult> PurchaseAsync(PurchaseRequest request)
    {
        var result = await PurchaseOnceAsync(request);
        _metrics.Purchase(result.Outcome);
        return result;
    }

    private async Task<PurchaseResult> PurchaseOnceAsync(PurchaseRequest request)
    {
        var sale = _sale ??= await GrainFactory.Product(_sku).GetDefinitionAsync();
        if (PurchaseChecks.Refuse(_sku, sale, request, _time.UtcNow) is { } refused)
        {
            return refused;
        }

        if (GrainKeys.QuotaShard(request.UserId, sale!.QuotaShards) != _shard)
        {
            return PurchaseResult.Rejected(PurchaseOutcome.Invalid, "the request was sent to the wrong quota shard");
        }

        // The same request arriving twice at once shares one attempt: the second caller gets the first's order.
        var key = (request.UserId, request.RequestId);
        if (_inFlight.TryGetValue(key, out var running))
        {
            var first = await running;
            return first.Outcome == PurchaseOutcome.Created ? first with { Outcome = PurchaseOutcome.Replayed } : first;
        }

        var attempt = PurchaseCoreAsync(sale, request);
        _inFlight[key] = attempt;
        try
        {
            return await attempt;
        }
        finally
        {
            _inFlight.Remove(key);
        }
    }

    private async Task<PurchaseResult> PurchaseCoreAsync(SaleDefinition sale, PurchaseRequest request)
    {
        var database = sale.Mode == SaleModes.Database;
        // A database sale has no bucket routing and no in-memory sold-out view: only MySQL knows the stock.
        var routing = database ? null : await GetRoutingAsync(seenEmpty: null);
        if (database)
        {
            _buyers = null;
        }
        else if (routing is null)
        {
            return PurchaseResult.Rejected(PurchaseOutcome.UnknownSale);
        }
        else if (routing.SoldOut)
        {
            // Sold out: only a user holding units can be replaying an earlier success. Everyone else is answered
            // from memory, without a Redis round trip.
            var buyers = await GetBuyersAsync();
            if (!buyers.Contains(request.UserId))
            {
                return PurchaseResult.Rejected(PurchaseOutcome.SoldOut);
            }
        }
        else
        {
            _buyers = null;
        }

        var orderId = Guid.CreateVersion7().ToString("N");
        var reservation = new Reservation(request, orderId, LookupOnly: routing?.SoldOut ?? false,
            _time.UtcNow.ToUnixTimeMilliseconds());
        Enqueue(reservation);
        ReserveAnswer answer;
        try
        {
            answer = await reservation.Answer.Task;
        }
        catch (Exception)
        {
            // Already logged by the pump. The record may or may not exist: a replay settles it.
            return PurchaseResult.Rejected(PurchaseOutcome.Unavailable, PurchaseChecks.RetryDetail);
        }

        switch (answer.Kind)
        {
            case ReserveKind.LimitExceeded:
                return PurchaseResult.Rejected(PurchaseOutcome.LimitExceeded, PurchaseChecks.LimitDetail(sale));
            case ReserveKind.NoRecord:
                return PurchaseResult.Rejected(PurchaseOutcome.SoldOut);
            case ReserveKind.Existing:
                return await ResumeAsync(sale, request, answer.Record!);
            default:
                var record = RequestRecord.Reserved(orderId, request.Quantity, reservation.NowMs);
                return database
                    ? await DeductInDatabaseAsync(request, record, created: true)
                    : await DeductAsync(request, record, created: true);
        }
    }

    /// <summary>A replay: answer from a settled record, or finish the purchase a crash interrupted.</summary>
    private async Task<PurchaseResult> ResumeAsync(SaleDefinition sale, PurchaseRequest request, string stored)
    {
        if (!RequestRecord.TryParse(stored, out var record))
        {
            Log.BadRecord(_logger, _sku, _shard, stored);
            return PurchaseResult.Rejected(PurchaseOutcome.Unavailable, "the stored request record is unreadable");
        }

        if (record.Done)
        {
            return Success(request, record.OrderId, record.Quantity, record.Bucket, PurchaseOutcome.Replayed);
        }

        if (sale.Mode == SaleModes.Database)
        {
            // Submitting the same order id again is safe: a stored order answers Deducted and takes nothing.
            return await DeductInDatabaseAsync(request, record, created: false);
        }

        // The first attempt may still be on its way to a bucket (its call timed out, or its silo died). Each bucket
        // either has the order or bans it for good, atomically, so the answer cannot change behind this replay.
        var routing = await GetRoutingAsync(seenEmpty: null);
        var highest = routing?.HighestBucketCount ?? 0;
        bool[] found;
        try
        {
            found = await Task.WhenAll(Enumerable.Range(0, highest)
                .Select(i => GrainFactory.Bucket(_sku, i).VoidOrderAsync(record.OrderId)));
        }
        catch (Exception ex)
        {
            Log.BucketCallFailed(_logger, ex, _sku, _shard, -1, record.OrderId);
            return Unknown(request, record);
        }

        var bucket = Array.IndexOf(found, true);
        if (bucket >= 0)
        {
            Settle(request, record, RequestRecord.Settled(record, bucket));
            return Success(request, record.OrderId, record.Quantity, bucket, PurchaseOutcome.Replayed);
        }

        // No bucket has the order, and none ever will: give its units back, then buy afresh under a new order id.
        // The release is awaited, so the new reservation cannot find the old record.
        return await SettleBatchAsync([new Settlement(request.UserId, request.RequestId, record, null)])
            ? await PurchaseCoreAsync(sale, request)
            : Unknown(request, record);
    }

    private PurchaseResult Unknown(PurchaseRequest request, RequestRecord record) =>
        new(PurchaseOutcome.Unavailable,
            new OrderInfo(record.OrderId, _sku, request.UserId, request.RequestId, record.Quantity, OrderStatuses.Reserved, -1),
            PurchaseChecks.RetryDetail);

    private async Task<PurchaseResult> DeductAsync(PurchaseRequest request, RequestRecord record, bool created)
    {
        var routing = await GetRoutingAsync(seenEmpty: null);
        var seenEmpty = new List<int>();
        var tried = new HashSet<int>();
        var userHash = StableHash.Of(request.UserId);
        var refreshes = 0;
        var hops = 0;
        while (routing is not null && hops < _options.MaxHops)
        {
            if (routing.SoldOut)
            {
                break;
            }

            var candidate = Pick(routing, tried, userHash, hops);
            if (candidate is not { } bucket)
            {
                if (refreshes++ >= 3)
                {
                    break;
                }

                routing = await GetRoutingAsync(seenEmpty.ToArray());
                tried.ExceptWith(seenEmpty);
                seenEmpty.Clear();
                continue;
            }

            hops++;
            DeductResult result;
            try
            {
                result = await DeductInBucketAsync(bucket, new DeductRequest(record.OrderId, request.UserId, request.RequestId, record.Quantity));
            }
            catch (Exception ex)
            {
                // Unknown outcome: keep the reservation; a replay looks for the order in every bucket.
                Log.BucketCallFailed(_logger, ex, _sku, _shard, bucket, record.OrderId);
                result = new DeductResult(DeductOutcome.Unknown, -1);
            }

            // Unknown: keep the reservation for a replay. Voided: a replay already took this request over (and owns
            // its record), so this attempt must neither settle nor release it.
            if (result.Outcome is DeductOutcome.Unknown or DeductOutcome.Voided)
            {
                return Unknown(request, record);
            }

            if (result.Outcome is DeductOutcome.Deducted or DeductOutcome.AlreadyDeducted)
            {
                Settle(request, record, RequestRecord.Settled(record, bucket));
                return Success(request, record.OrderId, record.Quantity, bucket,
                    created ? PurchaseOutcome.Created : PurchaseOutcome.Replayed);
            }

            tried.Add(bucket);
            if (result.Remaining <= 0)
            {
                seenEmpty.Add(bucket);
                ForgetBucket(bucket);
            }
        }

        // No bucket could serve it: give the units back so the user may try again later.
        Settle(request, record, replacement: null);
        return routing is null || routing.SoldOut || routing.WithStock.All(tried.Contains)
            ? PurchaseResult.Rejected(PurchaseOutcome.SoldOut, routing is { SoldOut: false } ? "not enough units left in any one bucket" : null)
            : PurchaseResult.Rejected(PurchaseOutcome.Unavailable, "no bucket could be reached in time; retry");
    }

    /// <summary>Step 2 of a database sale: one deduction in MySQL, answered once its transaction committed.</summary>
    private async Task<PurchaseResult> DeductInDatabaseAsync(PurchaseRequest request, RequestRecord record, bool created)
    {
        const int NoBucket = -1;
        DatabaseDeductOutcome outcome;
        try
        {
            outcome = await _database.DeductAsync(new DeductionRecord(record.OrderId, request.RequestId, _sku, request.UserId,
                record.Quantity, NoBucket, _time.UtcNow.ToUnixTimeMilliseconds()));
        }
        catch (Exception ex)
        {
            // Unknown outcome: keep the reservation; a replay submits the same order id and learns the answer.
            Log.DatabaseDeductFailed(_logger, ex, _sku, _shard, record.OrderId);
            return new PurchaseResult(PurchaseOutcome.Unavailable,
                new OrderInfo(record.OrderId, _sku, request.UserId, request.RequestId, record.Quantity, OrderStatuses.Reserved, NoBucket),
                PurchaseChecks.RetryDetail);
        }

        if (outcome == DatabaseDeductOutcome.Deducted)
        {
            Settle(request, record, RequestRecord.Settled(record, NoBucket));
            return Success(request, record.OrderId, record.Quantity, NoBucket, created ? PurchaseOutcome.Created : PurchaseOutcome.Replayed);
        }

        Settle(request, record, replacement: null);
        return PurchaseResult.Rejected(PurchaseOutcome.SoldOut);
    }

    /// <summary>
    /// Hands a purchase to a bucket. Purchases of this shard for the same bucket share one grain call: while the
    /// calls to the bucket are out, the next ones queue here and go together in the following call. Two calls in
    /// flight per bucket, because the bucket pipelines two batches (one storing its half message while the other
    /// runs its script); with one, its pipeline would never fill.
    /// </summary>
    private Task<DeductResult> DeductInBucketAsync(int bucket, DeductRequest request)
    {
        if (!_bucketCalls.TryGetValue(bucket, out var calls))
        {
            _bucketCalls[bucket] = calls = new BucketCalls();
        }

        var pending = new PendingDeduction(request);
        calls.Queue.Enqueue(pending);
        if (calls.Senders < BucketCallsInFlight)
        {
            calls.Senders++;
            // Started inside a grain turn: runs on this activation's scheduler, interleaved with purchases.
            calls.Track(SendToBucketAsync(bucket, calls));
        }

        return pending.Answer.Task;
    }

    private async Task SendToBucketAsync(int bucket, BucketCalls calls)
    {
        try
        {
            // Started by the first purchase whose reservation came back; yielding once (to this activation's
            // scheduler) lets the other purchases of the same reserve batch queue up behind it first.
            await Task.Yield();
            while (calls.Queue.Count > 0)
            {
                var batch = Take(calls.Queue);
                var requests = new DeductRequest[batch.Count];
                for (var i = 0; i < batch.Count; i++)
                {
                    requests[i] = batch[i].Request;
                }

                try
                {
                    var results = await GrainFactory.Bucket(_sku, bucket).DeductManyAsync(requests);
                    for (var i = 0; i < batch.Count; i++)
                    {
                        batch[i].Answer.TrySetResult(results[i]);
                    }
                }
                catch (Exception ex)
                {
                    // Each waiting purchase logs it with its order id and keeps its reservation.
                    foreach (var p in batch)
                    {
                        p.Answer.TrySetException(ex);
                    }
                }
            }
        }
        finally
        {
            calls.Senders--;
        }
    }

    private static int? Pick(BucketRouting routing, HashSet<int> tried, uint userHash, int hops)
    {
        if (hops == 0 && routing.BucketCount > 0)
        {
            var preferred = (int)(userHash % (uint)routing.BucketCount);
            if (!tried.Contains(preferred) && Array.IndexOf(routing.WithStock, preferred) >= 0)
            {
                return preferred;
            }
        }

        var candidates = routing.WithStock.Where(b => !tried.Contains(b)).ToArray();
        return candidates.Length == 0 ? null : candidates[(int)((userHash + (uint)hops) % (uint)candidates.Length)];
    }

    private PurchaseResult Success(PurchaseRequest request, string orderId, int quantity, int bucket, PurchaseOutcome outcome)
    {
        _buyers?.Add(request.UserId);
        return new(outcome, new OrderInfo(orderId, _sku, request.UserId, request.RequestId, quantity, OrderStatuses.Reserved, bucket), null);
    }

    /// <summary>The shard's buyers, read from Redis once per sold-out spell (bounded by the stock).</summary>
    private async Task<HashSet<string>> GetBuyersAsync()
    {
        if (_buyers is { } known)
        {
            return known;
        }

        var load = _buyersLoad ??= LoadBuyersAsync();
        try
        {
            return _buyers = await load;
        }
        finally
        {
            _buyersLoad = null;
        }
    }

    private async Task<HashSet<string>> LoadBuyersAsync()
    {
        var db = await _redis.GetDatabaseAsync();
        var members = await db.SetMembersAsync(RedisKeys.Buyers(_sku, _shard));
        return members.Select(m => m.ToString()).ToHashSet(StringComparer.Ordinal);
    }

    private async Task<BucketRouting?> GetRoutingAsync(int[]? seenEmpty)
    {
        // A cache age, not business time: measured on the real monotonic clock even when the sale clock is faked.
        var fresh = _routing is not null && Stopwatch.GetElapsedTime(_routingFetchedAt) < RoutingMaxAge;
        if (seenEmpty is null && fresh)
        {
            return _routing;
        }

        _routing = await GrainFactory.Product(_sku).GetRoutingAsync(seenEmpty ?? []);
        _routingFetchedAt = Stopwatch.GetTimestamp();
        return _routing;
    }

    /// <summary>Stops sending this shard's next purchases to a bucket just seen empty.</summary>
    private void ForgetBucket(int bucket)
    {
        if (_routing is { } routing && Array.IndexOf(routing.WithStock, bucket) >= 0)
        {
            _routing = routing with { WithStock = routing.WithStock.Where(b => b != bucket).ToArray() };
        }
    }

    private void Settle(PurchaseRequest request, RequestRecord record, RequestRecord? replacement)
    {
        _settlements.Enqueue(new Settlement(request.UserId, request.RequestId, record, replacement));
        EnsurePump();
    }

    private void Enqueue(Reservation reservation)
    {
        _reservations.Enqueue(reservation);
        EnsurePump();
    }

    private void EnsurePump()
    {
        if (!_pumping)
        {
            _pumping = true;
            // Started inside a grain turn: the pump runs on this activation's scheduler, interleaved with purchases.
            _pump = PumpAsync();
        }
    }

    private async Task PumpAsync()
    {
        try
        {
            // Lets the other calls already waiting for this activation queue up before the first batch is taken.
            await Task.Yield();
            while (_reservations.Count > 0 || _settlements.Count > 0)
            {
                // Settlements are sent first and reservations right behind them on the same connection, so Redis
                // runs them in that order and one round trip serves both (a replay in this reserve batch sees the
                // settled record; if it saw the reserved one it would look the order up in the buckets, also right).
                Task settle = _settlements.Count > 0 ? SettleBatchAsync(Take(_settlements)) : Task.CompletedTask;
                var reserve = Task.CompletedTask;
                List<Reservation>? batch = null;
                if (_reservations.Count > 0)
                {
                    batch = Take(_reservations);
                    reserve = ReserveBatchAsync(batch);
                }

                await settle;
                try
                {
                    await reserve;
                }
                catch (Exception ex)
                {
                    // Never leave a caller waiting: whatever went wrong, every reservation gets an answer.
                    Log.QuotaScriptFailed(_logger, ex, _sku, _shard, "reserve-answer", batch!.Count);
                    foreach (var r in batch)
                    {
                        r.Answer.TrySetException(ex);
                    }
                }
            }
        }
        finally
        {
            _pumping = false;
        }
    }

    private List<T> Take<T>(Queue<T> queue)
    {
        var batch = new List<T>(Math.Min(queue.Count, _options.MaxBatch));
        while (batch.Count < _options.MaxBatch && queue.Count > 0)
        {
            batch.Add(queue.Dequeue());
        }

        return batch;
    }

    private async Task ReserveBatchAsync(List<Reservation> batch)
    {
        var sale = _sale!;
        var keys = new RedisKey[1 + batch.Count * 2];
        var args = new RedisValue[3 + batch.Count * 4];
        keys[0] = RedisKeys.Buyers(_sku, _shard);
        args[0] = sale.PerUserLimit;
        args[1] = SaleLifetime.RecordTtlSeconds(sale, _time.UtcNow, _options.RecordTtl);
        // One flag for the whole call: a batch mixing look-ups and reservations is sent as reservations, which is
        // still correct (a sold-out sale then fails in the bucket step and releases).
        args[2] = batch.TrueForAll(r => r.LookupOnly) ? "1" : "0";
        for (var i = 0; i < batch.Count; i++)
        {
            var r = batch[i];
            keys[1 + 2 * i] = RedisKeys.UserUnits(_sku, _shard, r.Request.UserId);
            keys[2 + 2 * i] = RedisKeys.Request(_sku, _shard, r.Request.UserId, r.Request.RequestId);
            args[3 + i * 4] = r.Request.Quantity;
            args[4 + i * 4] = r.OrderId;
            args[5 + i * 4] = r.NowMs;
            args[6 + i * 4] = r.Request.UserId;
        }

        RedisResult[] results;
        try
        {
            var db = await _redis.GetDatabaseAsync();
            results = (RedisResult[])(await RedisScripts.EvaluateAsync(db, _scripts.Reserve, keys, args))!;
        }
        catch (Exception ex)
        {
            _metrics.RedisFailure("reserve");
            Log.QuotaScriptFailed(_logger, ex, _sku, _shard, "reserve", batch.Count);
            foreach (var r in batch)
            {
                r.Answer.TrySetException(ex);
            }

            return;
        }

        for (var i = 0; i < batch.Count; i++)
        {
            // Codes come back as integers, records as strings (which always contain '|').
            var text = results[i].ToString();
            var answer = !long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var code)
                ? new ReserveAnswer(ReserveKind.Existing, text)
                : code switch
                {
                    1 => new ReserveAnswer(ReserveKind.Reserved, null),
                    0 => new ReserveAnswer(ReserveKind.LimitExceeded, null),
                    _ => new ReserveAnswer(ReserveKind.NoRecord, null),
                };
            batch[i].Answer.TrySetResult(answer);
        }
    }

    /// <summary>Runs the batch's settlements; false when Redis did not answer (they stay reservations).</summary>
    private async Task<bool> SettleBatchAsync(List<Settlement> batch)
    {
        var keys = new RedisKey[1 + batch.Count * 2];
        var args = new RedisValue[batch.Count * 5];
        keys[0] = RedisKeys.Buyers(_sku, _shard);
        for (var i = 0; i < batch.Count; i++)
        {
            var s = batch[i];
            keys[1 + 2 * i] = RedisKeys.UserUnits(_sku, _shard, s.UserId);
            keys[2 + 2 * i] = RedisKeys.Request(_sku, _shard, s.UserId, s.RequestId);
            args[5 * i] = s.Replacement is null ? "X" : "D";
            args[5 * i + 1] = s.Record.Quantity;
            args[5 * i + 2] = s.Record.ToString();
            args[5 * i + 3] = s.Replacement?.ToString() ?? "";
            args[5 * i + 4] = s.UserId;
        }

        try
        {
            var db = await _redis.GetDatabaseAsync();
            await RedisScripts.EvaluateAsync(db, _scripts.Finalize, keys, args);

            // Order id → sale, bucket and buyer, so an order can be looked up by id alone while it is still
            // on its way to MySQL. Pipelined: one round trip for the batch whatever the slots.
            var ttl = _options.RecordTtl;
            await Task.WhenAll(batch.Where(s => s.Replacement is not null).Select(s => db.StringSetAsync(
                RedisKeys.OrderIndex(s.Record.OrderId),
                string.Join('|', _sku, s.Replacement!.Bucket, s.Record.Quantity, s.RequestId, s.UserId),
                ttl)));
        }
        catch (Exception ex)
        {
            // Left as reservations: replays finish them; units of unreplayed ones stay reserved (never oversold).
            _metrics.RedisFailure("finalize");
            Log.QuotaScriptFailed(_logger, ex, _sku, _shard, "finalize", batch.Count);
            return false;
        }

        return true;
    }

    private enum ReserveKind
    {
        Reserved,
        LimitExceeded,
        NoRecord,
        Existing,
    }

    private sealed record ReserveAnswer(ReserveKind Kind, string? Record);

    private sealed record Reservation(PurchaseRequest Request, string OrderId, bool LookupOnly, long NowMs)
    {
        public TaskCompletionSource<ReserveAnswer> Answer { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed class BucketCalls
    {
        public Queue<PendingDeduction> Queue { get; } = new();

        /// <summary>Senders running; at most <see cref="BucketCallsInFlight"/>.</summary>
        public int Senders { get; set; }

        // Finished senders are dropped when the next one starts, so this holds at most BucketCallsInFlight tasks
        // however long the activation lives (chaining them with WhenAll grew without bound under steady load).
        private readonly List<Task> _running = new(BucketCallsInFlight);

        public void Track(Task sender)
        {
            _running.RemoveAll(t => t.IsCompleted);
            _running.Add(sender);
        }

        public Task WhenIdle() => Task.WhenAll(_running);
    }

    private sealed class PendingDeduction(DeductRequest request)
    {
        public DeductRequest Request { get; } = request;

        public TaskCompletionSource<DeductResult> Answer { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed record Settlement(string UserId, string RequestId, RequestRecord Record, RequestRecord? Replacement);
}

/// <summary>The request record kept in the quota shard: <c>orderId|quantity|state|bucket|createdMs</c>.</summary>
internal sealed record RequestRecord(string OrderId, int Quantity, bool Done, int Bucket, long CreatedMs)
{
    public static RequestRecord Reserved(string orderId, int quantity, long createdMs) => new(orderId, quantity, false, -1, createdMs);

    public static RequestRecord Settled(RequestRecord record, int bucket) => record with { Done = true, Bucket = bucket };

    public static bool TryParse(string text, out RequestRecord record)
    {
        record = null!;
        var parts = text.Split('|');
        if (parts.Length != 5
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var quantity)
            || parts[2] is not ("R" or "D")
            || !int.TryParse(parts[3], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var bucket)
            || !long.TryParse(parts[4], NumberStyles.None, CultureInfo.InvariantCulture, out var created))
        {
            return false;
        }

        record = new RequestRecord(parts[0], quantity, parts[2] == "D", bucket, created);
        return true;
    }

    // Must match what reserve.lua writes, byte for byte: the settle script compares the whole string.
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{OrderId}|{Quantity}|{(Done ? "D" : "R")}|{Bucket}|{CreatedMs}");
}
