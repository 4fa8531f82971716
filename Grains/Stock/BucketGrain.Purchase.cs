namespace OrleansFlashSale.Grains;

/// <summary>The home purchases of a bucket: users whose quota shard is this bucket buy here in one script per batch.</summary>
public sealed partial class BucketGrain
{
    public async Task<PurchaseReply[]> PurchaseManyAsync(PurchaseRequest[] requests)
    {
        var sale = _sale ??= await GrainFactory.Product(_sku).GetDefinitionAsync();
        var now = _time.UtcNow;
        var call = new PurchaseCall(requests.Length, sale!, _homeAnswered);
        for (var i = 0; i < requests.Length; i++)
        {
            var request = requests[i];
            if (PurchaseChecks.Refuse(_sku, sale, request, now) is { } refused)
            {
                _metrics.Purchase(refused.Outcome);
                call.Reply(i, PurchaseReply.From(refused));
                continue;
            }

            // Only this bucket's own users, and only while it may have stock, take the one-script path; the rest go
            // to the user's quota grain, which reserves there and finds a sibling bucket (or answers sold out).
            var shard = GrainKeys.QuotaShard(request.UserId, sale!.QuotaShards);
            var dry = _remaining is { } known && known < request.Quantity && _queue.Count == 0 && !_pump.Running;
            if (sale.Mode == SaleModes.Database || shard != _index || dry)
            {
                _ = ForwardAsync(call, i, request, shard);
            }
            else
            {
                _queue.Enqueue(BucketWork.ForPurchase(request, _orderIds.Next(), call, i));
            }
        }

        // Started once all of them are queued, so the whole call goes out in one batch.
        _pump.Start();
        return await call.Replies;
    }

    /// <summary>Replies to a home purchase from its script's answer, or sends it on to its quota grain.</summary>
    private void HomeAnswered(BucketWork work, HomePurchaseAnswer? answer, Exception? failure)
    {
        var call = work.Call!;
        var request = work.Purchase!;
        if (failure is not null)
        {
            // Logged by the pump. The script ran or it did not; either way a retry with the same request id finds the
            // record or starts afresh, and the check-back fences an attempt that never reached Redis.
            _metrics.Purchase(PurchaseOutcome.Unavailable);
            call.Reply(work.Slot, PurchaseReply.Rejected(PurchaseOutcome.Unavailable, PurchaseChecks.RetryDetail));
            return;
        }

        PurchaseReply? reply = answer!.Outcome switch
        {
            HomePurchaseOutcome.Created => new(PurchaseOutcome.Created, work.OrderId, request.Quantity, _index, null),
            HomePurchaseOutcome.LimitExceeded => PurchaseReply.Rejected(PurchaseOutcome.LimitExceeded, PurchaseChecks.LimitDetail(call.Sale)),
            HomePurchaseOutcome.BadQuantity => PurchaseReply.Rejected(PurchaseOutcome.Invalid, $"quantity must be between 1 and {call.Sale.PerUserLimit}"),
            HomePurchaseOutcome.Existing when RequestRecord.TryParse(answer.Record!, out var record) && record.Done =>
                new(PurchaseOutcome.Replayed, record.OrderId, record.Quantity, record.Bucket, null),
            // Not enough here, or a request the overflow path has reserved and not settled: the quota grain finishes it.
            _ => null,
        };
        if (reply is null)
        {
            _ = ForwardAsync(call, work.Slot, request, _index);
            return;
        }

        _metrics.Purchase(reply.Outcome);
        call.Reply(work.Slot, reply);
    }

    private async Task ForwardAsync(PurchaseCall call, int slot, PurchaseRequest request, int shard)
    {
        PurchaseReply reply;
        try
        {
            reply = PurchaseReply.From(await GrainFactory.Quota(_sku, shard).PurchaseAsync(request));
        }
        catch (Exception ex)
        {
            Log.ForwardFailed(_logger, ex, _sku, _index, shard);
            reply = PurchaseReply.Rejected(PurchaseOutcome.Unavailable, PurchaseChecks.RetryDetail);
        }

        call.Reply(slot, reply);
    }
}
