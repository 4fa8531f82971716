using System.Globalization;
using Microsoft.Extensions.Logging;
using OrleansFlashSale.Redis;
using StackExchange.Redis;

namespace OrleansFlashSale.Grains;

/// <summary>The shard's pump: reservations and settlements queued while Redis answers go out as one script call each.</summary>
public sealed partial class QuotaGrain
{
    private void Settle(PurchaseRequest request, RequestRecord record, RequestRecord? replacement)
    {
        _settlements.Enqueue(new Settlement(request.UserId, request.RequestId, record, replacement));
        _pump.Start();
    }

    private void Enqueue(Reservation reservation)
    {
        _reservations.Enqueue(reservation);
        _pump.Start();
    }

    private bool HasScriptWork() => _reservations.Count > 0 || _settlements.Count > 0;

    /// <summary>One round of the pump: a batch of settlements and a batch of reservations, as two script calls.</summary>
    private async Task SendScriptsAsync()
    {
        // Settlements are sent first and reservations right behind them on the same connection, so Redis runs them
        // in that order and one round trip serves both (a replay in this reserve batch sees the settled record; if it
        // saw the reserved one it would look the order up in the buckets, also right).
        Task settle = _settlements.Count > 0 ? SettleBatchAsync(_pump.Take(_settlements)) : Task.CompletedTask;
        var reserve = Task.CompletedTask;
        List<Reservation>? batch = null;
        if (_reservations.Count > 0)
        {
            batch = _pump.Take(_reservations);
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

    private async Task ReserveBatchAsync(List<Reservation> batch)
    {
        var sale = _sale!;
        RedisKey[] keys = [RedisKeys.Units(_sku, _shard), RedisKeys.Requests(_sku, _shard)];
        var args = new RedisValue[3 + batch.Count * 5];
        args[0] = sale.PerUserLimit;
        args[1] = SaleLifetime.RecordTtlSeconds(sale, _time.UtcNow, _options.RecordTtl);
        // One flag for the whole call: a batch mixing look-ups and reservations is sent as reservations, which is
        // still correct (a sold-out sale then fails in the bucket step and releases).
        args[2] = batch.TrueForAll(r => r.LookupOnly) ? "1" : "0";
        for (var i = 0; i < batch.Count; i++)
        {
            var r = batch[i];
            args[3 + i * 5] = r.Request.Quantity;
            args[4 + i * 5] = r.OrderId;
            args[5 + i * 5] = r.NowMs;
            args[6 + i * 5] = r.Request.UserId;
            args[7 + i * 5] = r.Request.RequestId;
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
        RedisKey[] keys = [RedisKeys.Units(_sku, _shard), RedisKeys.Requests(_sku, _shard)];
        var args = new RedisValue[batch.Count * 6];
        for (var i = 0; i < batch.Count; i++)
        {
            var s = batch[i];
            args[6 * i] = s.Replacement is null ? "X" : "D";
            args[6 * i + 1] = s.Record.Quantity;
            args[6 * i + 2] = s.Record.ToString();
            args[6 * i + 3] = s.Replacement?.ToString() ?? "";
            args[6 * i + 4] = s.UserId;
            args[6 * i + 5] = s.RequestId;
        }

        try
        {
            var db = await _redis.GetDatabaseAsync();
            await RedisScripts.EvaluateAsync(db, _scripts.Finalize, keys, args);

            // Order id → sale, bucket and buyer, so an order can be looked up by id alone while it is still
            // on its way to MySQL.
            await OrderIndexWrites.WriteAsync(db, batch.Where(s => s.Replacement is not null).Select(s =>
                new OrderIndexEntry(s.Record.OrderId, _sku, s.Replacement!.Bucket, s.Record.Quantity, s.RequestId, s.UserId)),
                _options.RecordTtl);
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

    private sealed record Settlement(string UserId, string RequestId, RequestRecord Record, RequestRecord? Replacement);
}
