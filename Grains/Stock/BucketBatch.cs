using System.Diagnostics;
using System.Globalization;
using OrleansFlashSale.Persistence;
using OrleansFlashSale.Pipeline;
using OrleansFlashSale.Redis;
using StackExchange.Redis;

namespace OrleansFlashSale.Grains;

/// <summary>What one queued item of a bucket is: an overflow deduction, a home purchase, or a single stock operation.</summary>
internal enum BucketWorkKind
{
    Deduct,
    Purchase,
    Operation,
}

/// <summary>How purchase.lua answered one purchase.</summary>
internal enum HomePurchaseOutcome
{
    Created,
    Existing,
    LimitExceeded,
    NotEnoughHere,
    BadQuantity,
}

internal sealed record HomePurchaseAnswer(HomePurchaseOutcome Outcome, string? Record, long Remaining);

/// <summary>
/// The check-back already answered for this transaction (rolled it back, or closed it), so this script deducted
/// nothing: the caller may retry with the same request id.
/// </summary>
internal sealed class TransactionFencedException(string transactionId)
    : Exception($"Transaction {transactionId} was answered by the check-back before this script ran; nothing was deducted.");

internal sealed class BucketWork
{
    private bool _answered;

    private BucketWork(BucketWorkKind kind) => Kind = kind;

    public BucketWorkKind Kind { get; }

    public DeductRequest? Deduct { get; private init; }

    public PurchaseRequest? Purchase { get; private init; }

    /// <summary>The order id a home purchase gets if this attempt creates it.</summary>
    public string? OrderId { get; private init; }

    public TaskCompletionSource<DeductResult>? Deduction { get; private init; }

    /// <summary>The call a home purchase belongs to, and its place in it.</summary>
    public PurchaseCall? Call { get; private init; }

    public int Slot { get; private init; }

    public Func<IDatabase, Task<long>>? Run { get; private init; }

    public TaskCompletionSource<long>? Operation { get; private init; }

    public string Order => Deduct?.OrderId ?? OrderId!;

    public string User => Deduct?.UserId ?? Purchase!.UserId;

    public string Request => Deduct?.RequestId ?? Purchase!.RequestId;

    public int Quantity => Deduct?.Quantity ?? Purchase!.Quantity;

    public static BucketWork ForDeduct(DeductRequest request) =>
        new(BucketWorkKind.Deduct) { Deduct = request, Deduction = new(TaskCreationOptions.RunContinuationsAsynchronously) };

    public static BucketWork ForPurchase(PurchaseRequest request, string orderId, PurchaseCall call, int slot) =>
        new(BucketWorkKind.Purchase) { Purchase = request, OrderId = orderId, Call = call, Slot = slot };

    public static BucketWork ForOperation(Func<IDatabase, Task<long>> run) =>
        new(BucketWorkKind.Operation) { Run = run, Operation = new(TaskCreationOptions.RunContinuationsAsynchronously) };

    /// <summary>Hands a home purchase's script answer to its call. Only the first answer or failure counts.</summary>
    public void Answer(HomePurchaseAnswer answer)
    {
        if (!_answered)
        {
            _answered = true;
            Call!.Answered(this, answer, null);
        }
    }

    public void Fail(Exception ex)
    {
        Deduction?.TrySetException(ex);
        Operation?.TrySetException(ex);
        if (Call is not null && !_answered)
        {
            _answered = true;
            Call.Answered(this, null, ex);
        }
    }
}

/// <summary>
/// One script call's worth of a bucket's queue, all of one kind, in one transaction (<see cref="BucketEpoch"/>).
/// Builds the script's keys and arguments and reads its answer; the grain decides what to do with it.
/// </summary>
internal sealed class BucketBatch(BucketWorkKind kind, List<BucketWork> works, BucketEpoch epoch)
{
    public BucketWorkKind Kind { get; } = kind;

    public List<BucketWork> Works { get; } = works;

    public BucketEpoch Epoch { get; } = epoch;

    public string TransactionId => Epoch.TransactionId;

    public long ScriptStarted { get; set; }

    /// <summary>The script this batch runs, for logs and failure metrics.</summary>
    public string ScriptName => Kind == BucketWorkKind.Purchase ? "purchase" : "deduct";

    /// <param name="retentionSeconds">TTL of the fence and of the order markers.</param>
    /// <param name="saleRecordSeconds">TTL of the users' counters and request records (<see cref="SaleLifetime"/>).</param>
    public Task<RedisResult> EvaluateAsync(IDatabase db, RedisScripts scripts, string sku, int bucket, long retentionSeconds,
        long saleRecordSeconds, int perUserLimit)
    {
        ScriptStarted = Stopwatch.GetTimestamp();
        return Kind == BucketWorkKind.Purchase
            ? RedisScripts.EvaluateAsync(db, scripts.Purchase, PurchaseKeys(sku, bucket),
                PurchaseArgs(bucket, saleRecordSeconds, perUserLimit, retentionSeconds))
            : RedisScripts.EvaluateAsync(db, scripts.Deduct, DeductKeys(sku, bucket), DeductArgs(bucket, retentionSeconds));
    }

    /// <summary>Answers every work from the script's reply; returns the committed orders with their log entry ids.</summary>
    public (List<DeductionRecord> Committed, List<string> LogEntries) Answer(RedisResult[] results, string sku, int bucket)
    {
        var remaining = (long)results[0];
        var committed = new List<DeductionRecord>(Works.Count);
        var logEntries = new List<string>(Works.Count);
        for (var i = 0; i < Works.Count; i++)
        {
            var work = Works[i];
            var text = results[i + 1].ToString();
            if (IsEntryId(text))
            {
                committed.Add(new DeductionRecord(work.Order, work.Request, sku, work.User, work.Quantity, bucket, EntryMilliseconds(text)));
                logEntries.Add(text);
            }

            if (Kind == BucketWorkKind.Purchase)
            {
                work.Answer(ReadPurchase(text, remaining));
            }
            else if (ReadDeduct(text) is { } outcome)
            {
                work.Deduction!.TrySetResult(new DeductResult(outcome, remaining));
            }
            else
            {
                work.Deduction!.TrySetException(new ArgumentOutOfRangeException(nameof(DeductRequest.Quantity),
                    $"Bucket {sku}/{bucket} refused quantity {work.Quantity}."));
            }
        }

        return (committed, logEntries);
    }

    private RedisKey[] PurchaseKeys(string sku, int bucket)
    {
        return
        [
            RedisKeys.Stock(sku, bucket),
            RedisKeys.Log(sku, bucket),
            RedisKeys.Units(sku, bucket),
            RedisKeys.Requests(sku, bucket),
            RedisKeys.Fence(sku, bucket, TransactionId),
        ];
    }

    private RedisValue[] PurchaseArgs(int bucket, long recordSeconds, int perUserLimit, long fenceSeconds)
    {
        var args = new RedisValue[5 + Works.Count * 4];
        args[0] = bucket;
        args[1] = recordSeconds;
        args[2] = perUserLimit;
        args[3] = fenceSeconds;
        args[4] = TransactionId;
        Fill(args, 5);
        return args;
    }

    private RedisKey[] DeductKeys(string sku, int bucket)
    {
        var keys = new RedisKey[3 + Works.Count];
        keys[0] = RedisKeys.Stock(sku, bucket);
        keys[1] = RedisKeys.Log(sku, bucket);
        keys[2] = RedisKeys.Fence(sku, bucket, TransactionId);
        for (var i = 0; i < Works.Count; i++)
        {
            keys[3 + i] = RedisKeys.OrderMarker(sku, bucket, Works[i].Order);
        }

        return keys;
    }

    private RedisValue[] DeductArgs(int bucket, long ttlSeconds)
    {
        var args = new RedisValue[3 + Works.Count * 4];
        args[0] = bucket;
        args[1] = ttlSeconds;
        args[2] = TransactionId;
        Fill(args, 3);
        return args;
    }

    private void Fill(RedisValue[] args, int offset)
    {
        for (var i = 0; i < Works.Count; i++)
        {
            var w = Works[i];
            args[offset + i * 4] = w.Order;
            args[offset + 1 + i * 4] = w.User;
            args[offset + 2 + i * 4] = w.Request;
            args[offset + 3 + i * 4] = w.Quantity;
        }
    }

    private static HomePurchaseAnswer ReadPurchase(string text, long remaining) => text switch
    {
        _ when IsEntryId(text) => new(HomePurchaseOutcome.Created, null, remaining),
        ['E', ..] => new(HomePurchaseOutcome.Existing, text[1..], remaining),
        "L" => new(HomePurchaseOutcome.LimitExceeded, null, remaining),
        "S" => new(HomePurchaseOutcome.NotEnoughHere, null, remaining),
        _ => new(HomePurchaseOutcome.BadQuantity, null, remaining),
    };

    private static DeductOutcome? ReadDeduct(string text) =>
        IsEntryId(text) ? DeductOutcome.Deducted
        : text switch
        {
            "2" => DeductOutcome.AlreadyDeducted,
            "3" => DeductOutcome.Voided,
            "0" => DeductOutcome.Insufficient,
            _ => null,
        };

    /// <summary>A stream entry id, "milliseconds-sequence": what the scripts answer for a deduction.</summary>
    private static bool IsEntryId(string text)
    {
        var dash = text.IndexOf('-');
        return dash > 0 && dash < text.Length - 1 && text.AsSpan(0, dash).IndexOfAnyExceptInRange('0', '9') < 0;
    }

    private static long EntryMilliseconds(string entryId) =>
        long.TryParse(entryId.AsSpan(0, entryId.IndexOf('-')), NumberStyles.None, CultureInfo.InvariantCulture, out var ms) ? ms : 0;
}
