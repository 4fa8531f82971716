using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;
using OrleansFlashSale.Persistence;
using OrleansFlashSale.Redis;
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
/// (<see cref="IDatabaseDeductor"/>), awaited before the buyer is answered; its orders carry bucket -1.
/// </remarks>
[Reentrant]
public sealed partial class QuotaGrain : Grain, IQuotaGrain
{
    private static readonly TimeSpan RoutingMaxAge = TimeSpan.FromSeconds(1);
    private const int BucketCallsInFlight = 2;

    private readonly RedisConnection _redis;
    private readonly RedisScripts _scripts;
    private readonly DeductionOptions _options;
    private readonly FlashSaleMetrics _metrics;
    private readonly SaleClock _time;
    private readonly ILogger<QuotaGrain> _logger;
    private readonly IDatabaseDeductor _database;
    private readonly Dictionary<(string User, string Request), Task<PurchaseResult>> _inFlight = new();
    private readonly Queue<Reservation> _reservations = new();
    private readonly Queue<Settlement> _settlements = new();
    private readonly Dictionary<int, BucketCalls> _bucketCalls = new();
    private readonly ActivationPump _pump;
    private string _sku = "";
    private int _shard;
    private SaleDefinition? _sale;
    private BucketRouting? _routing;
    private long _routingFetchedAt;
    private HashSet<string>? _buyers;
    private Task<HashSet<string>>? _buyersLoad;

    public QuotaGrain(RedisConnection redis, RedisScripts scripts, IOptions<DeductionOptions> options,
        FlashSaleMetrics metrics, SaleClock time, ILogger<QuotaGrain> logger, IDatabaseDeductor database)
    {
        _database = database;
        _redis = redis;
        _scripts = scripts;
        _options = options.Value;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        // Yields first: the calls already waiting for this activation queue up before the first batch is taken.
        _pump = new ActivationPump(_options.MaxBatch, HasScriptWork, SendScriptsAsync, yieldFirst: true);
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
        await _pump.WhenIdle().WaitAsync(cancellationToken);

        foreach (var calls in _bucketCalls.Values)
        {
            await calls.Pump.WhenIdle().WaitAsync(cancellationToken);
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
        var value = await db.HashGetAsync(RedisKeys.Units(_sku, _shard), userId);
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
        var members = await db.HashKeysAsync(RedisKeys.Units(_sku, _shard));
        return members.Select(m => m.ToString()).ToHashSet(StringComparer.Ordinal);
    }
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
