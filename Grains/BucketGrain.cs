using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;
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
        FlashSaleMetrics metrics, ILogger<BucketGrain> logger)
    {
        _redis = redis;
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

    public Task<DeductResult> DeductAsync(DeductRequest request)
    {
        if (_remaining is { } known && known < request.Quantity && _queue.Count == 0 && !_pumping)
        {
            // Known short: no Redis round trip. A retry of an order deducted here is settled by HasOrderAsync.
            return Task.FromResult(new DeductResult(DeductOutcome.Insufficient, known));
        }

        var work = new Work(request);
        Enqueue(work);
        return work.Deduction!.Task;
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
            while (_queue.Count > 0)
            {
                if (_queue.Peek().Deduction is null)
                {
                    await RunOperationAsync(_queue.Dequeue());
                    continue;
                }

                var batch = new List<Work>(Math.Min(_queue.Count, _options.MaxBatch));
                while (batch.Count < _options.MaxBatch && _queue.Count > 0 && _queue.Peek().Deduction is not null)
                {
                    batch.Add(_queue.Dequeue());
                }

                try
                {
                    await DeductBatchAsync(batch);
                }
                catch (Exception ex)
                {
                    // Never leave a caller waiting: whatever went wrong, every purchase in the batch gets an answer.
                    _remaining = null;
                    Log.BucketScriptFailed(_logger, ex, _sku, _index, "deduct-answer", batch.Count);
                    foreach (var work in batch)
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

    private async Task DeductBatchAsync(List<Work> batch)
    {
        var keys = new RedisKey[batch.Count + 2];
        var args = new RedisValue[2 + batch.Count * 4];
        keys[0] = RedisKeys.Stock(_sku, _index);
        keys[1] = RedisKeys.Log(_sku, _index);
        args[0] = _index;
        args[1] = (long)_options.RecordTtl.TotalSeconds;
        for (var i = 0; i < batch.Count; i++)
        {
            var request = batch[i].Request!;
            keys[2 + i] = RedisKeys.OrderMarker(_sku, _index, request.OrderId);
            args[2 + i * 4] = request.OrderId;
            args[3 + i * 4] = request.UserId;
            args[4 + i * 4] = request.RequestId;
            args[5 + i * 4] = request.Quantity;
        }

        long[] results;
        var started = Stopwatch.GetTimestamp();
        try
        {
            var db = await _redis.GetDatabaseAsync();
            results = (long[])(await RedisScripts.EvaluateAsync(db, _scripts.Deduct, keys, args))!;
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

        _metrics.DeductBatch(batch.Count, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        if (results[0] < 0)
        {
            Log.StockKeyMissing(_logger, _sku, _index);
            _remaining = null;
            var missing = new InvalidOperationException($"Bucket {_sku}/{_index} has no stock key in Redis.");
            foreach (var work in batch)
            {
                work.Deduction!.TrySetException(missing);
            }

            return;
        }

        var remaining = results[0];
        Observe(remaining);
        for (var i = 0; i < batch.Count; i++)
        {
            var outcome = results[i + 1] switch
            {
                1 => DeductOutcome.Deducted,
                2 => DeductOutcome.AlreadyDeducted,
                0 => DeductOutcome.Insufficient,
                _ => (DeductOutcome?)null,
            };
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
    }

    private void Observe(long remaining)
    {
        _remaining = remaining;
        if (remaining > 0)
        {
            _reportedEmpty = false;
        }
        else if (!_reportedEmpty)
        {
            _reportedEmpty = true;
            _ = GrainFactory.Product(_sku).BucketEmptiedAsync(_index);
        }
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
