using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Orleans.Runtime;
using OrleansFlashSale.Messaging;
using OrleansFlashSale.Persistence;
using OrleansFlashSale.Pipeline;
using OrleansFlashSale.Redis;
using StackExchange.Redis;

namespace OrleansFlashSale.Grains;

/// <summary>
/// The bucket's RocketMQ-style transactions: half message stored, the scripts of one or more batches, then commit or
/// rollback (<see cref="BucketEpoch"/>).
/// </summary>
public sealed partial class BucketGrain
{
    /// <summary>
    /// Stores a transaction's half message before any script of it runs. If this process dies before the commit, the
    /// broker's check-back asks Redis (seal.lua; fence.lua for a one-batch half message) and finishes the job, so an
    /// order deducted in Redis always reaches the queue, and no script of a transaction the check-back answered can
    /// deduct later. Null when JetStream did not take it (<see cref="BucketEpoch.HalfFailure"/>): the transaction's
    /// batches then fail and Redis is not asked.
    /// </summary>
    private async Task<HalfMessageHandle?> SendHalfAsync(BucketEpoch epoch, HalfPayload payload)
    {
        try
        {
            // Bounded: while NATS is down the client waits for the reconnect instead of failing, and this pump (so
            // every purchase queued on the bucket) would wait with it for the whole outage.
            using var timeout = new CancellationTokenSource(_messages.OperationTimeout);
            try
            {
                return await _producer.SendHalfAsync(epoch.TransactionId, _messages.DeductionsSubject(_sku),
                    PipelineJson.Serialize(payload), timeout.Token);
            }
            catch (OperationCanceledException ex) when (timeout.IsCancellationRequested)
            {
                throw new TimeoutException($"NATS did not store the half message within {_messages.OperationTimeout}.", ex);
            }
        }
        catch (Exception ex)
        {
            _metrics.RedisFailure("half-message");
            BridgeLog.HalfSendFailed(_logger, ex, _sku, _index, epoch.Orders);
            epoch.HalfFailure = ex;
            epoch.Closing = true;
            return null;
        }
    }

    /// <summary>Sends the batch's script; only called once the batch's half message is stored.</summary>
    private async Task<RedisResult> EvaluateAsync(BucketBatch batch)
    {
        if (_faults.UnsentScriptFailure() is { } unsent)
        {
            throw unsent;
        }

        var db = await _redis.GetDatabaseAsync();
        var retention = (long)_options.RecordTtl.TotalSeconds;
        // Only purchase batches write records, and only they need the sale (always loaded before one is queued).
        var records = _sale is { } sale ? SaleLifetime.RecordTtlSeconds(sale, _time.UtcNow, _options.RecordTtl) : retention;
        return await batch.EvaluateAsync(db, _scripts, _sku, _index, retention, records, _sale?.PerUserLimit ?? 1);
    }

    /// <summary>Answers the batch's callers and adds its orders to its transaction, which commits them when it closes.</summary>
    private async Task FinishBatchAsync(BucketBatch batch, Task<RedisResult> script)
    {
        var works = batch.Works;
        var epoch = batch.Epoch;
        RedisResult[] results;
        try
        {
            results = (RedisResult[])(await script)!;
        }
        catch (Exception ex)
        {
            // Forget the cached stock and let callers settle each order. A script that may have run leaves the
            // transaction to the check-back: only the log knows whether it deducted. One that certainly did not
            // (Redis down or loading) took nothing, so the transaction goes on and its bucket commits what its other
            // batches deducted, without waiting for Redis to answer the check-back.
            _remaining = null;
            if (!RedisScripts.CertainlyNotRun(ex))
            {
                epoch.LeaveToCheckBack();
            }

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
                // The check-back answered for this transaction (it outlived the transaction timeout) and publishes
                // whatever its earlier batches deducted; the next batch opens a new one.
                BridgeLog.TransactionFenced(_logger, _sku, _index, epoch.TransactionId);
                failure = new TransactionFencedException(epoch.TransactionId);
                epoch.LeaveToCheckBack();
            }
            else
            {
                Log.StockKeyMissing(_logger, _sku, _index);
                failure = new InvalidOperationException($"Bucket {_sku}/{_index} has no stock key in Redis.");
            }

            _remaining = null;
            works.ForEach(w => w.Fail(failure));
            return;
        }

        Observe((long)results[0]);
        var (committed, logEntries) = batch.Answer(results, _sku, _index);
        if (committed.Count > 0 && batch.Kind == BucketWorkKind.Purchase)
        {
            _ = IndexOrdersAsync(committed);
        }

        // Buyers have their answers; the orders leave with their transaction's commit, which never holds the pump.
        // A commit event that is lost or fails leaves the half message, which the check-back commits from Redis.
        epoch.Committed.AddRange(committed);
        epoch.LogEntries.AddRange(logEntries);
    }

    /// <summary>
    /// Order id → sale, bucket and buyer, so an order can be looked up by id alone while it is still on its way to
    /// MySQL. Another slot than the bucket's, so not part of the script; one HSET for the batch.
    /// </summary>
    private async Task IndexOrdersAsync(List<DeductionRecord> orders)
    {
        try
        {
            var db = await _redis.GetDatabaseAsync();
            await OrderIndexWrites.WriteAsync(db,
                orders.Select(o => new OrderIndexEntry(o.OrderId, _sku, _index, o.Quantity, o.RequestId, o.UserId)), _options.RecordTtl);
        }
        catch (Exception ex)
        {
            _metrics.RedisFailure("order-index");
            Log.OrderIndexFailed(_logger, ex, _sku, _index, orders.Count);
        }
    }

    /// <summary>Commits a transaction through the stream bridge, or rolls it back when nothing was deducted.</summary>
    private async Task FinishTransactionAsync(HalfMessageHandle half, List<DeductionRecord> committed, List<string> logEntries)
    {
        if (committed.Count == 0)
        {
            try
            {
                // Bounded for the same reason as the half message; a half message left behind is rolled back by the
                // check-back (no order marker in Redis).
                using var timeout = new CancellationTokenSource(_messages.OperationTimeout);
                await _producer.RollbackAsync(half, timeout.Token);
            }
            catch (Exception ex)
            {
                BridgeLog.RollbackFailed(_logger, ex, _sku, _index, half.TransactionId);
            }

            return;
        }

        if (_faults.ShouldDropCommitEvent())
        {
            BridgeLog.CommitEventDropped(_logger, half.TransactionId);
            return;
        }

        try
        {
            var stream = this.GetStreamProvider(PipelineStreams.Provider)
                .GetStream<DeductionsCommitted>(StreamId.Create(PipelineStreams.Namespace, PipelineStreams.Key(_sku, _index)));
            await stream.OnNextAsync(new DeductionsCommitted(half, _sku, _index, committed.ToArray(), logEntries.ToArray()));
            _pipelineMetrics.PipelineStageReached(PipelineStage.Enqueued, committed);
        }
        catch (Exception ex)
        {
            BridgeLog.CommitEventFailed(_logger, ex, _sku, _index, half.TransactionId);
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
