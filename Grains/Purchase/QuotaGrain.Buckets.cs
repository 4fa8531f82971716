using System.Diagnostics;
using Microsoft.Extensions.Logging;
using OrleansFlashSale.Persistence;

namespace OrleansFlashSale.Grains;

/// <summary>The deduction step of an overflow purchase: which bucket, one shared call per bucket, or MySQL for a database sale.</summary>
public sealed partial class QuotaGrain
{
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
            _bucketCalls[bucket] = calls = new BucketCalls(_options.MaxBatch, c => SendToBucketAsync(bucket, c));
        }

        var pending = new PendingDeduction(request);
        calls.Queue.Enqueue(pending);
        calls.Pump.Start();
        return pending.Answer.Task;
    }

    /// <summary>One call to the bucket with up to a batch of the purchases queued for it.</summary>
    private async Task SendToBucketAsync(int bucket, BucketCalls calls)
    {
        var batch = calls.Pump.Take(calls.Queue);
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

    private sealed class BucketCalls
    {
        public BucketCalls(int maxBatch, Func<BucketCalls, Task> sendAsync)
        {
            // Started by the first purchase whose reservation came back; yielding once lets the other purchases of
            // the same reserve batch queue up behind it first.
            Pump = new ActivationPump(maxBatch, () => Queue.Count > 0, () => sendAsync(this), yieldFirst: true,
                maxDrains: BucketCallsInFlight);
        }

        public Queue<PendingDeduction> Queue { get; } = new();

        public ActivationPump Pump { get; }
    }

    private sealed class PendingDeduction(DeductRequest request)
    {
        public DeductRequest Request { get; } = request;

        public TaskCompletionSource<DeductResult> Answer { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
