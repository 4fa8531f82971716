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
/// call, one call at a time. Every stock change of the bucket (deduct, take, give, initialise) goes through that
/// pump, so the cached figure is always the one of the last call Redis answered. The grain is still
/// single-threaded; the queue needs no lock.
/// </remarks>
[Reentrant]
public sealed class BucketGrain : Grain, IBucketGrain
{
    private readonly RedisConnection _redis;
    private readonly ITransactionalProducer _producer;
    private readonly JetStreamConnection _nats;
    private readonly PipelineFaults _faults;
    private readonly RedisScripts _scripts;
    private readonly DeductionOptions _options;
    private readonly FlashSaleMetrics _metrics;
    private readonly ILogger<BucketGrain> _logger;
    private readonly Queue<Work> _queue = new();
    private string _sku = "";
    private int _index;
    private long? _remaining;
    private bool _pumping;
    private bool _reportedEmpty;

    public BucketGrain(RedisConnection redis, RedisScripts scripts, IOptions<DeductionOptions> options,
        FlashSaleMetrics metrics, ILogger<BucketGrain> logger, ITransactionalProducer producer, JetStreamConnection nats,
        PipelineFaults faults)
    {
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
        return Task.CompletedTask;
    }

    public Task<DeductResult> DeductAsync(DeductRequest request) => Deduct(request, startPump: true);

    private Task<DeductResult> Deduct(DeductRequest request, bool startPump)
    {
        if (_remaining is { } known && known < request.Quantity && _queue.Count == 0 && !_pumping)
        {
            // Known short: no Redis round trip. A retry of an order deducted here is settled by HasOrderAsync.
            return Task.FromResult(new DeductResult(DeductOutcome.Insufficient, known));
        }

        var work = new Work(request);
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
                // finds out whether this order was deducted here (HasOrderAsync).
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
            await db.StringSetAsync(RedisKeys.Stock(_sku, _index), stock);
            return stock;
        });

    public async Task<long> TakeAsync(string transferId, long amount)
    {
        long taken = 0;
        await Run(async db =>
        {
            var result = (long[])(await RedisScripts.EvaluateAsync(db, _scripts.Take,
                [RedisKeys.Stock(_sku, _index), RedisKeys.Transfer(_sku, _index, transferId)],
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

    public async Task<long> ReturnAsync(string orderId, int quantity)
    {
        var remaining = await Run(async db =>
        {
            var remaining = (long)(await RedisScripts.EvaluateAsync(db, _scripts.Return,
                [RedisKeys.Stock(_sku, _index), RedisKeys.ReturnMarker(_sku, _index, orderId)],
                [quantity, (long)_options.RecordTtl.TotalSeconds]));
            if (remaining < 0)
            {
                Log.StockKeyMissing(_logger, _sku, _index);
                throw new InvalidOperationException($"Bucket {_sku}/{_index} has no stock key in Redis.");
            }

            return remaining;
        });

        // Always tell the product, even when this activation never saw the bucket empty: its sold-out view may.
        _ = GrainFactory.Product(_sku).BucketRefilledAsync(_index);
        return remaining;
    }

    public Task<long> GiveAsync(string transferId, long amount) =>
        Run(async db => (long)(await RedisScripts.EvaluateAsync(db, _scripts.Give,
            [RedisKeys.Stock(_sku, _index), RedisKeys.Transfer(_sku, _index, transferId)],
            [amount, (long)_options.RecordTtl.TotalSeconds])));

    /// <summary>Queues a single Redis operation that returns the bucket's new remaining stock.</summary>
    private Task<long> Run(Func<IDatabase, Task<long>> operation)
    {
        var work = new Work(operation);
        Enqueue(work);
        return work.Operation!.Task;
    }

    private void Enqueue(Work work)
    {
        _queue.Enqueue(work);
        EnsurePump();
    }

    private void EnsurePump()
    {
        if (!_pumping)
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
            Batch? next = null;
            while (next is not null || _queue.Count > 0)
            {
                if (next is null && _queue.Peek().Deduction is null)
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

                    var script = EvaluateDeductAsync(current);
                    // Two-stage pipeline: while Redis runs this batch, the next batch's half message is stored. Its
                    // script still starts only after its own half message is stored and this script has answered.
                    if (_queue.Count > 0 && _queue.Peek().Deduction is not null)
                    {
                        next = StartBatch();
                    }

                    await FinishBatchAsync(current, half, script);
                }
                catch (Exception ex)
                {
                    // Never leave a caller waiting: whatever went wrong, every purchase in the batch gets an answer.
                    _remaining = null;
                    Log.BucketScriptFailed(_logger, ex, _sku, _index, "deduct-answer", current.Works.Count);
                    foreach (var work in current.Works)
                    {
                        work.Deduction!.TrySetException(ex);
                    }
                }
            }
        }
        finally
        {
            _pumping = false;
        }
    }

    /// <summary>Takes the deductions at the head of the queue and starts storing their half message.</summary>
    private Batch StartBatch()
    {
        var works = new List<Work>(Math.Min(_queue.Count, _options.MaxBatch));
        while (works.Count < _options.MaxBatch && _queue.Count > 0 && _queue.Peek().Deduction is not null)
        {
            works.Add(_queue.Dequeue());
        }

        return new Batch(works, SendHalfAsync(works));
    }

    private async Task RunOperationAsync(Work work)
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
    /// asks Redis and finishes the job, so an order deducted in Redis always reaches the queue. Null when JetStream
    /// did not take it: every purchase of the batch is then answered with the failure and Redis is not asked.
    /// </summary>
    private async Task<HalfMessageHandle?> SendHalfAsync(List<Work> batch)
    {
        var transactionId = Guid.CreateVersion7().ToString("N");
        try
        {
            var orders = new PendingOrder[batch.Count];
            for (var i = 0; i < batch.Count; i++)
            {
                var r = batch[i].Request!;
                orders[i] = new PendingOrder(r.OrderId, r.RequestId, r.UserId, r.Quantity);
            }

            // Bounded: while NATS is down the client waits for the reconnect instead of failing, and this pump (so
            // every purchase queued on the bucket) would wait with it for the whole outage.
            using var timeout = new CancellationTokenSource(_nats.Options.OperationTimeout);
            try
            {
                return await _producer.SendHalfAsync(transactionId, _nats.Topology.Deductions(_sku),
                    PipelineJson.Serialize(new HalfPayload(_sku, _index, orders)), timeout.Token);
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
            PipelineLog.HalfSendFailed(_logger, ex, _sku, _index, batch.Count);
            foreach (var work in batch)
            {
                work.Deduction!.TrySetException(ex);
            }

            return null;
        }
    }

    /// <summary>Sends the batch's deduct script; only called once the batch's half message is stored.</summary>
    private async Task<RedisResult[]> EvaluateDeductAsync(Batch batch)
    {
        var works = batch.Works;
        var keys = new RedisKey[works.Count + 2];
        var args = new RedisValue[2 + works.Count * 4];
        keys[0] = RedisKeys.Stock(_sku, _index);
        keys[1] = RedisKeys.Log(_sku, _index);
        args[0] = _index;
        args[1] = (long)_options.RecordTtl.TotalSeconds;
        for (var i = 0; i < works.Count; i++)
        {
            var request = works[i].Request!;
            keys[2 + i] = RedisKeys.OrderMarker(_sku, _index, request.OrderId);
            args[2 + i * 4] = request.OrderId;
            args[3 + i * 4] = request.UserId;
            args[4 + i * 4] = request.RequestId;
            args[5 + i * 4] = request.Quantity;
        }

        batch.ScriptStarted = Stopwatch.GetTimestamp();
        var db = await _redis.GetDatabaseAsync();
        return (RedisResult[])(await RedisScripts.EvaluateAsync(db, _scripts.Deduct, keys, args))!;
    }

    private async Task FinishBatchAsync(Batch current, HalfMessageHandle half, Task<RedisResult[]> script)
    {
        var batch = current.Works;
        RedisResult[] results;
        try
        {
            results = await script;
        }
        catch (Exception ex)
        {
            // The script may or may not have run: forget the cached stock and let callers settle each order.
            _remaining = null;
            _metrics.RedisFailure("deduct");
            Log.BucketScriptFailed(_logger, ex, _sku, _index, "deduct", batch.Count);
            foreach (var work in batch)
            {
                work.Deduction!.TrySetException(ex);
            }

            return;
        }

        _metrics.DeductBatch(batch.Count, Stopwatch.GetElapsedTime(current.ScriptStarted).TotalMilliseconds);
        if ((long)results[0] < 0)
        {
            Log.StockKeyMissing(_logger, _sku, _index);
            _remaining = null;
            var missing = new InvalidOperationException($"Bucket {_sku}/{_index} has no stock key in Redis.");
            foreach (var work in batch)
            {
                work.Deduction!.TrySetException(missing);
            }

            _ = FinishTransactionAsync(half, [], []);
            return;
        }

        var remaining = (long)results[0];
        Observe(remaining);
        var committed = new List<DeductionRecord>(batch.Count);
        var logEntries = new List<string>(batch.Count);
        for (var i = 0; i < batch.Count; i++)
        {
            // A deduction answers with its log entry id (a string); every other outcome is a small integer.
            var text = results[i + 1].ToString();
            var outcome = !long.TryParse(text, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var code)
                ? DeductOutcome.Deducted
                : code switch
                {
                    2 => DeductOutcome.AlreadyDeducted,
                    0 => DeductOutcome.Insufficient,
                    _ => (DeductOutcome?)null,
                };
            if (outcome == DeductOutcome.Deducted)
            {
                var r = batch[i].Request!;
                committed.Add(new DeductionRecord(r.OrderId, r.RequestId, _sku, r.UserId, r.Quantity, _index, EntryMilliseconds(text)));
                logEntries.Add(text);
            }

            if (outcome is { } known)
            {
                batch[i].Deduction!.TrySetResult(new DeductResult(known, remaining));
            }
            else
            {
                batch[i].Deduction!.TrySetException(new ArgumentOutOfRangeException(nameof(DeductRequest.Quantity),
                    $"Bucket {_sku}/{_index} refused quantity {batch[i].Request!.Quantity}."));
            }
        }

        // Buyers have their answers. The commit goes out without holding the pump: the next batch need not wait for
        // the stream hop, and a commit event that is lost or fails leaves the half message, which the check-back
        // commits from Redis (FinishTransactionAsync logs every failure itself).
        _ = FinishTransactionAsync(half, committed, logEntries);
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

    /// <summary>A stream entry id is "milliseconds-sequence", stamped by Redis at the commit.</summary>
    private static long EntryMilliseconds(string entryId) =>
        long.TryParse(entryId.AsSpan(0, Math.Max(0, entryId.IndexOf('-'))), out var ms) ? ms : 0;

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

    private sealed class Batch(List<Work> works, Task<HalfMessageHandle?> half)
    {
        public List<Work> Works { get; } = works;

        public Task<HalfMessageHandle?> Half { get; } = half;

        public long ScriptStarted { get; set; }
    }

    private sealed class Work
    {
        public Work(DeductRequest request)
        {
            Request = request;
            Deduction = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        public Work(Func<IDatabase, Task<long>> run)
        {
            Run = run;
            Operation = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        public DeductRequest? Request { get; }

        public TaskCompletionSource<DeductResult>? Deduction { get; }

        public Func<IDatabase, Task<long>>? Run { get; }

        public TaskCompletionSource<long>? Operation { get; }
    }
}
