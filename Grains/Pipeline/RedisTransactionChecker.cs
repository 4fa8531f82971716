using OrleansFlashSale.Grains.Messaging;
using OrleansFlashSale.Grains.Persistence;
using OrleansFlashSale.Grains.Redis;

namespace OrleansFlashSale.Grains.Pipeline;

/// <summary>
/// Answers the check-back of a bucket's half message from Redis, the local transaction's store: the deduction script
/// is atomic, so either it ran (every order it deducted has its marker) or it did not. Checks come no earlier than
/// the transaction timeout (6 s by default), long after the Redis command timeout, so "no marker" is final.
/// </summary>
public sealed class RedisTransactionChecker(RedisConnection redis, JetStreamConnection nats) : ITransactionChecker
{
    public async Task<TransactionCheckResult> CheckAsync(HalfMessage half, CancellationToken ct)
    {
        var payload = PipelineJson.Deserialize<HalfPayload>(half.Payload);
        var db = await redis.GetDatabaseAsync();
        var exists = await Task.WhenAll(payload.Orders.Select(o =>
            db.KeyExistsAsync(RedisKeys.OrderMarker(payload.Sku, payload.Bucket, o.OrderId))));
        var subject = nats.Topology.Deductions(payload.Sku);
        var committed = payload.Orders.Where((_, i) => exists[i])
            .Select(o => new DeductionRecord(o.OrderId, o.RequestId, payload.Sku, o.UserId, o.Quantity, payload.Bucket, half.SentAt.ToUnixTimeMilliseconds()))
            .ToArray();
        // The same message id as the bridge's commit: if the bridge published and only the half message's removal
        // was lost, JetStream drops this copy. An order deducted by an earlier transaction (a replay in this batch)
        // has a marker too; the writer ignores an order it already stored.
        return committed.Length > 0
            ? new TransactionCheckResult(TransactionState.Commit, [PipelineJson.ToTransactionMessage(half.TransactionId, committed, subject)])
            : new TransactionCheckResult(TransactionState.Rollback, []);
    }
}
