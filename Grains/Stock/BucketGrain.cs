using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;
using Orleans.Runtime;
using OrleansFlashSale.Messaging;
using OrleansFlashSale.Pipeline;
using OrleansFlashSale.Redis;
using StackExchange.Redis;

namespace OrleansFlashSale.Grains;

/// <summary>
/// One slice of a SKU's stock. Redis holds the truth; the grain keeps what Redis last told it, so an empty bucket
/// answers without a round trip.
/// </summary>
/// <remarks>
/// Reentrant so purchases queue up while a script call is out: one pump sends everything queued as one script
/// call, one call at a time. Every stock change of the bucket (purchase, deduct, take, give, initialise) goes through
/// that pump, so the cached figure is always the one of the last call Redis answered. The grain is still
/// single-threaded; the queue needs no lock.
/// Two kinds of batch: home purchases (<see cref="PurchaseManyAsync"/>, users whose quota shard is this bucket:
/// one script does idempotency, limit, stock and log) and overflow deductions (<see cref="DeductManyAsync"/>, orders
/// already reserved by a quota grain). The batches of a bucket run in RocketMQ-style transactions (half message,
/// scripts, commit), one or more batches each (<see cref="BucketEpoch"/>).
/// </remarks>
[Reentrant]
public sealed partial class BucketGrain : Grain, IBucketGrain
{
    private readonly RedisConnection _redis;
    private readonly ITransactionalProducer _producer;
    private readonly IPipelineQueue _messages;
    private readonly IPipelineFaults _faults;
    private readonly RedisScripts _scripts;
    private readonly DeductionOptions _options;
    private readonly FlashSaleMetrics _metrics;
    private readonly PipelineMetrics _pipelineMetrics;
    private readonly ILogger<BucketGrain> _logger;
    private readonly SaleClock _time;
    private readonly Queue<BucketWork> _queue = new();
    private readonly ActivationPump _pump;
    private SaleDefinition? _sale;
    private string _sku = "";
    private int _index;
    private long? _remaining;
    // The batch taken while the one before it runs its script (its transaction's half message may be on its way).
    private BucketBatch? _next;
    private bool _reportedEmpty;
    private readonly Action<BucketWork, HomePurchaseAnswer?, Exception?> _homeAnswered;
    private readonly OrderIds _orderIds = new(TimeProvider.System);

    public BucketGrain(RedisConnection redis, RedisScripts scripts, IOptions<DeductionOptions> options,
        FlashSaleMetrics metrics, ILogger<BucketGrain> logger, ITransactionalProducer producer, IPipelineQueue queue,
        IPipelineFaults faults, SaleClock time, PipelineMetrics pipelineMetrics)
    {
        _pipelineMetrics = pipelineMetrics;
        _time = time;
        _redis = redis;
        _producer = producer;
        _messages = queue;
        _faults = faults;
        _scripts = scripts;
        _options = options.Value;
        _metrics = metrics;
        _logger = logger;
        _homeAnswered = HomeAnswered;
        // No yield: the batched calls (DeductManyAsync, PurchaseManyAsync) queue all their work before they start the
        // pump, and a single stock operation goes out at once.
        _pump = new ActivationPump(_options.MaxBatch, () => _next is not null || _queue.Count > 0, RunNextAsync, yieldFirst: false);
    }

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _index = checked((int)this.GetPrimaryKeyLong(out var sku));
        _sku = sku ?? throw new InvalidOperationException("A bucket grain needs the SKU as key extension.");
        StartLogSampling();
        return Task.CompletedTask;
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        StopLogSampling();
        await CloseEpochsAsync(cancellationToken);
    }

    public Task SaleChangedAsync(SaleDefinition sale)
    {
        _sale = sale;
        return Task.CompletedTask;
    }

    public Task<DeductResult> DeductAsync(DeductRequest request) => Deduct(request, startPump: true);

    private Task<DeductResult> Deduct(DeductRequest request, bool startPump)
    {
        if (_remaining is { } known && known < request.Quantity && _queue.Count == 0 && !_pump.Running)
        {
            // Known short: no Redis round trip. A replay of an order deducted here is settled by VoidOrderAsync.
            return Task.FromResult(new DeductResult(DeductOutcome.Insufficient, known));
        }

        var work = BucketWork.ForDeduct(request);
        _queue.Enqueue(work);
        if (startPump)
        {
            _pump.Start();
        }

        return work.Deduction!.Task;
    }

    public async Task<DeductResult[]> DeductManyAsync(DeductRequest[] requests)
    {
        var answers = new Task<DeductResult>[requests.Length];
        for (var i = 0; i < requests.Length; i++)
        {
            answers[i] = Deduct(requests[i], startPump: false);
        }

        // Started once all of them are queued, so the whole call goes out in one batch.
        _pump.Start();

        var results = new DeductResult[requests.Length];
        for (var i = 0; i < requests.Length; i++)
        {
            try
            {
                results[i] = await answers[i];
            }
            catch (Exception)
            {
                // Already logged with the bucket's key by the pump; the caller keeps the reservation and a replay
                // finds out whether this order was deducted here (VoidOrderAsync).
                results[i] = new DeductResult(DeductOutcome.Unknown, -1);
            }
        }

        return results;
    }

    public async Task<bool> HasOrderAsync(string orderId)
    {
        var db = await _redis.GetDatabaseAsync();
        return await db.KeyExistsAsync(RedisKeys.OrderMarker(_sku, _index, orderId));
    }

    public async Task<bool> VoidOrderAsync(string orderId)
    {
        var db = await _redis.GetDatabaseAsync();
        return (long)await RedisScripts.EvaluateAsync(db, _scripts.Void, [RedisKeys.OrderMarker(_sku, _index, orderId)],
            [(long)_options.RecordTtl.TotalSeconds]) == 1;
    }

    public Task<long> GetRemainingAsync(bool refresh)
    {
        if (!refresh && _remaining is { } known)
        {
            return Task.FromResult(known);
        }

        return Run(async db =>
        {
            var value = await db.StringGetAsync(RedisKeys.Stock(_sku, _index));
            return value.IsNull ? 0 : (long)value;
        });
    }

    public Task InitializeAsync(long stock) =>
        Run(async db =>
        {
            // Only a bucket that has no stock key yet gets one: a second initialisation (a sale created again after
            // its definition failed to store) must not sell again the units already sold.
            var key = RedisKeys.Stock(_sku, _index);
            if (await db.StringSetAsync(key, stock, when: When.NotExists))
            {
                return stock;
            }

            var current = await db.StringGetAsync(key);
            return current.IsNull ? 0 : (long)current;
        });

    public async Task<long> TakeAsync(string transferId, long amount)
    {
        long taken = 0;
        await Run(async db =>
        {
            var result = (long[])(await RedisScripts.EvaluateAsync(db, _scripts.Take,
                [RedisKeys.Stock(_sku, _index), RedisKeys.Transfer(_sku, _index, transferId), RedisKeys.Removed(_sku, _index)],
                [amount, (long)_options.RecordTtl.TotalSeconds]))!;
            if (result[0] < 0)
            {
                Log.StockKeyMissing(_logger, _sku, _index);
                throw new InvalidOperationException($"Bucket {_sku}/{_index} has no stock key in Redis.");
            }

            taken = result[0];
            return result[1];
        });
        return taken;
    }

    public async Task<ReturnResult> ReturnAsync(string orderId, int quantity, int liveBucket)
    {
        var movedTo = ReturnResult.Here;
        var remaining = await Run(async db =>
        {
            var result = (long[])(await RedisScripts.EvaluateAsync(db, _scripts.Return,
                [RedisKeys.Stock(_sku, _index), RedisKeys.ReturnMarker(_sku, _index, orderId), RedisKeys.Removed(_sku, _index)],
                [quantity, (long)_options.RecordTtl.TotalSeconds, liveBucket]))!;
            if (result[0] < 0)
            {
                Log.StockKeyMissing(_logger, _sku, _index);
                throw new InvalidOperationException($"Bucket {_sku}/{_index} has no stock key in Redis.");
            }

            movedTo = result[0] switch
            {
                0 => ReturnResult.Here,
                1 => checked((int)result[2]),
                _ => ReturnResult.RemovedNoTarget,
            };
            return result[1];
        });

        if (movedTo == ReturnResult.Here)
        {
            // Always tell the product, even when this activation never saw the bucket empty: its sold-out view may.
            _ = GrainFactory.Product(_sku).BucketRefilledAsync(_index);
        }

        return new ReturnResult(movedTo, remaining);
    }

    public Task<long> GiveAsync(string transferId, long amount) =>
        Run(async db => (long)(await RedisScripts.EvaluateAsync(db, _scripts.Give,
            [RedisKeys.Stock(_sku, _index), RedisKeys.Transfer(_sku, _index, transferId), RedisKeys.Removed(_sku, _index)],
            [amount, (long)_options.RecordTtl.TotalSeconds])));

    /// <summary>Queues a single Redis operation that returns the bucket's new remaining stock.</summary>
    private Task<long> Run(Func<IDatabase, Task<long>> operation)
    {
        var work = BucketWork.ForOperation(operation);
        _queue.Enqueue(work);
        _pump.Start();
        return work.Operation!.Task;
    }

    /// <summary>
    /// One round of the pump: a single operation, or one batch of a kind. Two-stage pipeline: while Redis runs this
    /// batch, the next batch's half message is stored. Its script still starts only after its own half message is
    /// stored and this script has answered.
    /// </summary>
    private async Task RunNextAsync()
    {
        if (_next is null && _queue.Peek().Kind == BucketWorkKind.Operation)
        {
            await RunOperationAsync(_queue.Dequeue());
            return;
        }

        var current = _next ?? StartBatch();
        _next = null;
        var epoch = current.Epoch;
        try
        {
            if (await epoch.Half is not { } half)
            {
                // Nothing was deducted: the queue could not take the intent, so Redis is not asked.
                current.Works.ForEach(w => w.Fail(epoch.HalfFailure!));
                return;
            }

            var script = EvaluateAsync(current);
            if (_queue.Count > 0 && _queue.Peek().Kind != BucketWorkKind.Operation)
            {
                _next = StartBatch();
            }

            await FinishBatchAsync(current, script);
        }
        catch (Exception ex)
        {
            // Never leave a caller waiting: whatever went wrong, every purchase in the batch gets an answer. Whether
            // the script ran is unknown, so the transaction's orders are for the check-back to read from Redis.
            _remaining = null;
            epoch.LeaveToCheckBack();
            Log.BucketScriptFailed(_logger, ex, _sku, _index, "batch-answer", current.Works.Count);
            current.Works.ForEach(w => w.Fail(ex));
        }
        finally
        {
            epoch.Running--;
            CloseIfDone(epoch);
        }
    }

    /// <summary>Takes the works of one kind at the head of the queue, in the open transaction or a new one.</summary>
    private BucketBatch StartBatch()
    {
        var kind = _queue.Peek().Kind;
        var works = _pump.Take(_queue, w => w.Kind == kind);
        var epoch = EpochFor(kind, works);
        epoch.Orders += works.Count;
        epoch.Running++;
        return new BucketBatch(kind, works, epoch);
    }

    private async Task RunOperationAsync(BucketWork work)
    {
        try
        {
            var db = await _redis.GetDatabaseAsync();
            var remaining = await work.Run!(db);
            Observe(remaining);
            work.Operation!.TrySetResult(remaining);
        }
        catch (Exception ex)
        {
            _remaining = null;
            _metrics.RedisFailure("bucket-op");
            Log.BucketScriptFailed(_logger, ex, _sku, _index, "operation", 1);
            work.Operation!.TrySetException(ex);
        }
    }
}
