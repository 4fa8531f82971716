using OrleansFlashSale.Messaging;
using OrleansFlashSale.Persistence;
using OrleansFlashSale.Redis;
using StackExchange.Redis;

namespace OrleansFlashSale.Pipeline;

/// <summary>
/// Answers the check-back of a bucket's half message from Redis, the local transaction's store, and makes the answer
/// final in the bucket's slot: seal.lua (a transaction of one or more batches) closes a transaction some batch of
/// which deducted ('F', its orders are the log entries with its id) or rolls it back ('X'); fence.lua (one-batch half
/// messages of earlier versions) finds it committed ('C', then each order's proof says whether it was deducted) or
/// rolls it back. After either answer no script of the transaction deducts, however late it reaches Redis. No timing
/// argument is involved.
/// </summary>
public sealed class RedisTransactionChecker(RedisConnection redis, RedisScripts scripts, JetStreamConnection nats, Microsoft.Extensions.Options.IOptions<DeductionOptions> options)
    : ITransactionChecker
{
    /// <summary>How far before the half message's time the bucket's log is read: the broker's and Redis' clocks may differ.</summary>
    private static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(1);

    public async Task<TransactionCheckResult> CheckAsync(HalfMessage half, CancellationToken ct)
    {
        var payload = ReadPayload(half);
        var db = await redis.GetDatabaseAsync();
        if (payload.Kind == HalfPayload.Epoch)
        {
            return await CheckEpochAsync(db, payload, half);
        }

        var deducted = payload.Kind is null
            ? await LegacyMarkersAsync(db, payload)
            : await FenceAsync(db, payload, half.TransactionId);
        if (deducted is null)
        {
            return new TransactionCheckResult(TransactionState.Rollback, []);
        }

        var subject = nats.Topology.Deductions(payload.Sku);
        var committed = payload.Orders.Where((_, i) => deducted[i])
            .Select(o => new DeductionRecord(o.OrderId, o.RequestId, payload.Sku, o.UserId, o.Quantity, payload.Bucket, half.SentAt.ToUnixTimeMilliseconds()))
            .ToArray();
        // The same message id as the bridge's commit: if the bridge published and only the half message's removal
        // was lost, JetStream drops this copy. An order deducted by an earlier transaction (a replay in this batch)
        // has its proof too; the writer ignores an order it already stored.
        return committed.Length > 0
            ? new TransactionCheckResult(TransactionState.Commit, [PipelineJson.ToTransactionMessage(half.TransactionId, committed, subject)])
            : new TransactionCheckResult(TransactionState.Rollback, []);
    }

    /// <summary>
    /// A transaction of one or more batches: seal.lua closes it for good (or rolls it back if no batch has deducted),
    /// so the log entries carrying its id are all the orders it will ever have. Entries the bridge already trimmed
    /// were published first, under the same message id.
    /// </summary>
    private async Task<TransactionCheckResult> CheckEpochAsync(IDatabase db, HalfPayload payload, HalfMessage half)
    {
        var state = (string?)await RedisScripts.EvaluateAsync(db, scripts.Seal,
            [RedisKeys.Fence(payload.Sku, payload.Bucket, half.TransactionId)], [(long)options.Value.RecordTtl.TotalSeconds]);
        if (state != "F")
        {
            return new TransactionCheckResult(TransactionState.Rollback, []);
        }

        var committed = new List<DeductionRecord>();
        await foreach (var entry in DeductionLog.ReadFromAsync(db, RedisKeys.Log(payload.Sku, payload.Bucket), LogReadStart(half)))
        {
            if (DeductionLog.TransactionOf(entry) == half.TransactionId && DeductionLog.ToRecord(payload.Sku, payload.Bucket, entry) is { } record)
            {
                committed.Add(record);
            }
        }

        return committed.Count > 0
            ? new TransactionCheckResult(TransactionState.Commit,
                [PipelineJson.ToTransactionMessage(half.TransactionId, committed, nats.Topology.Deductions(payload.Sku))])
            : new TransactionCheckResult(TransactionState.Rollback, []);
    }

    /// <summary>A payload that cannot be read now never can be: the check-back moves its half message to CHECKMAX.</summary>
    private static HalfPayload ReadPayload(HalfMessage half)
    {
        try
        {
            var payload = PipelineJson.Deserialize<HalfPayload>(half.Payload);
            return string.IsNullOrEmpty(payload.Sku) || payload.Orders is null
                ? throw new InvalidHalfMessageException($"Transaction {half.TransactionId}: the half message names no SKU or no order list")
                : payload;
        }
        catch (System.Text.Json.JsonException ex)
        {
            throw new InvalidHalfMessageException($"Transaction {half.TransactionId}: the half message's payload is not a bucket's: {ex.Message}", ex);
        }
    }

    /// <summary>The scripts ran after the half message was stored; less the skew between the broker's and Redis' clocks.</summary>
    private static long LogReadStart(HalfMessage half) => (half.SentAt - ClockSkew).ToUnixTimeMilliseconds();

    /// <summary>
    /// The check-back published the orders, so their entries may leave the bucket's log, as the bridge trims them
    /// after its own commit; otherwise the log would keep them until an operator's repair. The script wrote them after
    /// the half message was stored, so only entries from that time on (less the clock skew) are read.
    /// </summary>
    public async Task CommittedAsync(HalfMessage half, TransactionCheckResult result, CancellationToken ct)
    {
        var payload = ReadPayload(half);
        var committed = (result.ToCommit ?? [])
            .SelectMany(m => PipelineJson.ReadDeductions(m.Payload))
            .Select(r => r.OrderId)
            .ToHashSet(StringComparer.Ordinal);
        if (committed.Count == 0)
        {
            return;
        }

        var db = await redis.GetDatabaseAsync();
        var log = RedisKeys.Log(payload.Sku, payload.Bucket);
        var forwarded = new List<RedisValue>();
        await foreach (var entry in DeductionLog.ReadFromAsync(db, log, LogReadStart(half)))
        {
            if ((string?)entry["o"] is { } order && committed.Contains(order))
            {
                forwarded.Add(entry.Id);
            }
        }

        if (forwarded.Count > 0)
        {
            await db.StreamDeleteAsync(log, forwarded.ToArray());
        }
    }

    /// <summary>Null when the transaction is (now) rolled back, else which of its orders were deducted.</summary>
    private async Task<bool[]?> FenceAsync(IDatabase db, HalfPayload payload, string transactionId)
    {
        var orders = payload.Orders;
        var keys = new RedisKey[1 + orders.Count];
        var args = new RedisValue[1 + 2 * orders.Count];
        keys[0] = RedisKeys.Fence(payload.Sku, payload.Bucket, transactionId);
        args[0] = (long)options.Value.RecordTtl.TotalSeconds;
        for (var i = 0; i < orders.Count; i++)
        {
            var o = orders[i];
            // purchase.lua's proof is the request record holding this order id; deduct.lua's is the order marker.
            (keys[1 + i], args[1 + 2 * i], args[2 + 2 * i]) = payload.Kind == HalfPayload.HomePurchase
                ? (RedisKeys.Requests(payload.Sku, payload.Bucket), (RedisValue)RedisKeys.RequestField(o.UserId, o.RequestId),
                    (RedisValue)OrderProof.RecordPrefix(o.OrderId))
                : (RedisKeys.OrderMarker(payload.Sku, payload.Bucket, o.OrderId), (RedisValue)"", (RedisValue)OrderProof.Marker);
        }

        var results = (RedisResult[])(await RedisScripts.EvaluateAsync(db, scripts.Fence, keys, args))!;
        return results[0].ToString() == "C" ? results.Skip(1).Select(r => (long)r == 1).ToArray() : null;
    }

    /// <summary>A half message stored before transactions were fenced: its orders' markers are all there is to ask.</summary>
    private static async Task<bool[]?> LegacyMarkersAsync(IDatabase db, HalfPayload payload)
    {
        var exists = await Task.WhenAll(payload.Orders.Select(o =>
            db.KeyExistsAsync(RedisKeys.OrderMarker(payload.Sku, payload.Bucket, o.OrderId))));
        return exists.Any(e => e) ? exists : null;
    }
}
