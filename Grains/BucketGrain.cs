using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;
using Orleans.Runtime;
using OrleansFlashSale.Grains.Messaging;
using OrleansFlashSale.Grains.Persistence;
using OrleansFlashSale.Grains.Pipeline;
using OrleansFlashSale.Grains.Redis;
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
/// already reserved by a quota grain). Each batch is one RocketMQ-style transaction: half message, script, commit.
/// </remarks>
[Reentrant]
public sealed partial class BucketGrain : Grain, IBucketGrain
{
    private readonly RedisConnection _redis;
    private readonly ITransactionalProducer _producer;
    private readonly JetStreamConnection _nats;
    private readonly IPipelineFaults _faults;
    private readonly RedisScripts _scripts;
    private readonly DeductionOptions _options;
    private readonly FlashSaleMetrics _metrics;
    private readonly ILogger<BucketGrain> _logger;
    private readonly SaleClock _time;
    private readonly Queue<BucketWork> _queue = new();
    private SaleDefinition? _sale;
    private string _sku = "";
    private int _index;
    private long? _remaining;
    private bool _pumping;
    private bool _reportedEmpty;

    public BucketGrain(RedisConnection redis, RedisScripts scripts, IOptions<DeductionOptions> options,
        FlashSaleMetrics metrics, ILogger<BucketGrain> logger, ITransactionalProducer producer, JetStreamConnection nats,
        IPipelineFaults faults, SaleClock time)
    {
        _time = time;
        _redis = redis;
        _producer = producer;
        _nats = nats;
        _faults = faults;
        _scripts = scripts;
        _options = options.Value;
        _metrics = metrics;
        _logger = logger;
    }

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _index = checked((int)this.GetPrimaryKeyLong(out var sku));
        _sku = sku ?? throw new InvalidOperationException("A bucket grain needs the SKU as key extension.");
        StartLogSampling();
        return Task.CompletedTask;
    }

    public Task SaleChangedAsync(SaleDefinition sale)
    {
        _sale = sale;
        return Task.CompletedTask;
    }

    public Task<DeductResult> DeductAsync(DeductRequest request) => Deduct(request, startPump: true);

    private Task<DeductResult> Deduct(DeductRequest request, bool startPump)
    {
        if (_remaining is { } known && known < request.Quantity && _queue.Count == 0 && !_pumping)
        {
            // Known short: no Redis round trip. A replay of an order deducted here is settled by VoidOrderAsync.
            return Task.FromResult(new DeductResult(DeductOutcome.Insufficient, known));
        }

        var work = BucketWork.ForDeduct(request);
        _queue.Enqueue(work);
        if (startPump)
        {
            EnsurePump();
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
        EnsurePump();

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
        EnsurePump();
        return work.Operation!.Task;
    }

    private void EnsurePump()
    {
        if (!_pumping && _queue.Count > 0)
        {
            _pumping = true;
            // Started inside a grain turn, so the pump and its continuations run on this activation's scheduler.
            _ = PumpAsync();
        }
    }

    private async Task PumpAsync()
    {
        try
        {
            BucketBatch? next = null;
            while (next is not null || _queue.Count > 0)
            {
                if (next is null && _queue.Peek().Kind == BucketWorkKind.Operation)
                {
                    await RunOperationAsync(_queue.Dequeue());
                    continue;
                }

                var current = next ?? StartBatch();
                next = null;
                try
                {
                    if (await current.Half is not { } half)
                    {
                        continue;
                    }

                    var script = EvaluateAsync(current);
                    // Two-stage pipeline: while Redis runs this batch, the next batch's half message is stored. Its
                    // script still starts only after its own half message is stored and this script has answered.
                    if (_queue.Count > 0 && _queue.Peek().Kind != BucketWorkKind.Operation)
                    {
                        next = StartBatch();
                    }

                    await FinishBatchAsync(current, half, script);
                }
                catch (Exception ex)
                {
                    // Never leave a caller waiting: whatever went wrong, every purchase in the batch gets an answer.
                    _remaining = null;
                    Log.BucketScriptFailed(_logger, ex, _sku, _index, "batch-answer", current.Works.Count);
                    current.Works.ForEach(w => w.Fail(ex));
                }
            }
        }
        finally
        {
            _pumping = false;
        }
    }

    /// <summary>Takes the works of one kind at the head of the queue and starts storing their half message.</summary>
    private BucketBatch StartBatch()
    {
        var kind = _queue.Peek().Kind;
        var works = new List<BucketWork>(Math.Min(_queue.Count, _options.MaxBatch));
        while (works.Count < _options.MaxBatch && _queue.Count > 0 && _queue.Peek().Kind == kind)
        {
            works.Add(_queue.Dequeue());
        }

        var batch = new BucketBatch(kind, works, Guid.CreateVersion7().ToString("N"));
        batch.Half = SendHalfAsync(batch);
        return batch;
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

    /// <summary>
    /// RocketMQ-style transaction: the half message is stored first, the Redis script is the local transaction,
    /// then commit (through the stream bridge) or rollback. If this process dies in between, the broker's check-back
    /// asks Redis (fence.lua) and finishes the job, so an order deducted in Redis always reaches the queue, and a
    /// rolled-back transaction's script can never deduct later. Null when JetStream did not take it: every purchase
    /// of the batch is then answered with the failure and Redis is not asked.
    /// </summary>
    private async Task<HalfMessageHandle?> SendHalfAsync(BucketBatch batch)
    {
        try
        {
            // Bounded: while NATS is down the client waits for the reconnect instead of failing, and this pump (so
            // every purchase queued on the bucket) would wait with it for the whole outage.
            using var timeout = new CancellationTokenSource(_nats.Options.OperationTimeout);
            try
            {
                return await _producer.SendHalfAsync(batch.TransactionId, _nats.Topology.Deductions(_sku),
                    PipelineJson.Serialize(batch.Payload(_sku, _index)), timeout.Token);
            }
            catch (OperationCanceledException ex) when (timeout.IsCancellationRequested)
            {
                throw new TimeoutException($"NATS did not store the half message within {_nats.Options.OperationTimeout}.", ex);
            }
        }
        catch (Exception ex)
        {
            // Nothing was deducted: the queue could not take the intent, so Redis is not asked.
            _metrics.RedisFailure("half-message");
            PipelineLog.HalfSendFailed(_logger, ex, _sku, _index, batch.Works.Count);
            batch.Works.ForEach(w => w.Fail(ex));
            return null;
        }
    }

    /// <summary>Sends the batch's script; only called once the batch's half message is stored.</summary>
    private async Task<RedisResult> EvaluateAsync(BucketBatch batch)
    {
        var db = await _redis.GetDatabaseAsync();
        var retention = (long)_options.RecordTtl.TotalSeconds;
        // Only purchase batches write records, and only they need the sale (always loaded before one is queued).
        var records = _sale is { } sale ? SaleLifetime.RecordTtlSeconds(sale, _time.UtcNow, _options.RecordTtl) : retention;
        return await batch.EvaluateAsync(db, _scripts, _sku, _index, retention, records, _sale?.PerUserLimit ?? 1);
    }

    private async Task FinishBatchAsync(BucketBatch batch, HalfMessageHandle half, Task<RedisResult> script)
    {
        var works = batch.Works;
        RedisResult[] results;
        try
        {
            results = (RedisResult[])(await script)!;
        }
        catch (Exception ex)
        {
            // The script may or may not have run: forget the cached stock and let callers settle each order.
            _remaining = null;
            _metrics.RedisFailure(batch.ScriptName);
            Log.BucketScriptFailed(_logger, ex, _sku, _index, batch.ScriptName, works.Count);
            works.ForEach(w => w.Fail(ex));
            return;
        }

        _metrics.DeductBatch(works.Count, Stopwatch.GetElapsedTime(batch.ScriptStarted).TotalMilliseconds);
        if ((long)results[0] < 0)
        {
            Exception failure;
            if ((long)results[0] == -3)
            {
                PipelineLog.TransactionFenced(_logger, _sku, _index, half.TransactionId);
                failure = new TransactionFencedException(half.TransactionId);
            }
            else
            {
                Log.StockKeyMissing(_logger, _sku, _index);
                failure = new InvalidOperationException($"Bucket {_sku}/{_index} has no stock key in Redis.");
            }

            _remaining = null;
            works.ForEach(w => w.Fail(failure));
            _ = FinishTransactionAsync(half, [], []);
            return;
        }

        Observe((long)results[0]);
        var (committed, logEntries) = batch.Answer(results, _sku, _index);
        if (committed.Count > 0 && batch.Kind == BucketWorkKind.Purchase)
        {
            _ = IndexOrdersAsync(committed);
        }

        // Buyers have their answers. The commit goes out without holding the pump: the next batch need not wait for
        // the stream hop, and a commit event that is lost or fails leaves the half message, which the check-back
        // commits from Redis (FinishTransactionAsync logs every failure itself).
        _ = FinishTransactionAsync(half, committed, logEntries);
    }

    /// <summary>
    /// Order id → sale, bucket and buyer, so an order can be looked up by id alone while it is still on its way to
    /// MySQL. Another slot than the bucket's, so not part of the script; pipelined, one round trip for the batch.
    /// </summary>
    private async Task IndexOrdersAsync(List<DeductionRecord> orders)
    {
        try
        {
            var db = await _redis.GetDatabaseAsync();
            var ttl = _options.RecordTtl;
            await Task.WhenAll(orders.Select(o => db.StringSetAsync(RedisKeys.OrderIndex(o.OrderId),
                string.Join('|', _sku, _index, o.Quantity, o.RequestId, o.UserId), ttl)));
        }
        catch (Exception ex)
        {
            _metrics.RedisFailure("order-index");
            Log.OrderIndexFailed(_logger, ex, _sku, _index, orders.Count);
        }
    }

    /// <summary>Commits the batch's transaction through the stream bridge, or rolls it back when nothing was deducted.</summary>
    private async Task FinishTransactionAsync(HalfMessageHandle half, List<DeductionRecord> committed, List<string> logEntries)
    {
        if (committed.Count == 0)
        {
            try
            {
                // Bounded for the same reason as the half message; a half message left behind is rolled back by the
                // check-back (no order marker in Redis).
                using var timeout = new CancellationTokenSource(_nats.Options.OperationTimeout);
                await _producer.RollbackAsync(half, timeout.Token);
            }
            catch (Exception ex)
            {
                PipelineLog.RollbackFailed(_logger, ex, _sku, _index, half.TransactionId);
            }

            return;
        }

        if (_faults.ShouldDropCommitEvent())
        {
            PipelineLog.CommitEventDropped(_logger, half.TransactionId);
            return;
        }

        try
        {
            var stream = this.GetStreamProvider(PipelineStreams.Provider)
                .GetStream<DeductionsCommitted>(StreamId.Create(PipelineStreams.Namespace, PipelineStreams.Key(_sku, _index)));
            await stream.OnNextAsync(new DeductionsCommitted(half, _sku, _index, committed.ToArray(), logEntries.ToArray()));
            _metrics.PipelineStageReached(PipelineStage.Enqueued, committed);
        }
        catch (Exception ex)
        {
            PipelineLog.CommitEventFailed(_logger, ex, _sku, _index, half.TransactionId);
        }
    }

    private void Observe(long remaining)
    {
        _remaining = remaining;
        if (remaining > 0)
        {
            if (_reportedEmpty)
            {
                // Stock came back (a return): the product's sold-out view must learn it.
                _ = GrainFactory.Product(_sku).BucketRefilledAsync(_index);
            }

            _reportedEmpty = false;
        }
        else if (!_reportedEmpty)
        {
            _reportedEmpty = true;
            _ = GrainFactory.Product(_sku).BucketEmptiedAsync(_index);
        }
    }
}
