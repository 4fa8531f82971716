using System.Text.Json;
using OrleansFlashSale.Grains.Messaging;
using OrleansFlashSale.Grains.Persistence;

namespace OrleansFlashSale.Grains.Pipeline;

public static class PipelineStreams
{
    /// <summary>Orleans stream provider carrying committed deductions from buckets to the bridge.</summary>
    public const string Provider = "flashsale-pipeline";

    /// <summary>Stream namespace; the stream key is the SKU, so one bridge activation per SKU.</summary>
    public const string Namespace = "flashsale.deductions";
}

/// <summary>What a bucket stores with its half message: enough for the check-back to ask Redis what happened.</summary>
public sealed record HalfPayload(string Sku, int Bucket, IReadOnlyList<PendingOrder> Orders);

public sealed record PendingOrder(string OrderId, string RequestId, string UserId, int Quantity);

/// <summary>A bucket's script call committed these deductions in Redis; the bridge commits them to JetStream.</summary>
[GenerateSerializer, Immutable, Alias("flashsale.DeductionsCommitted")]
public sealed record DeductionsCommitted(
    [property: Id(0)] HalfMessageHandle Half,
    [property: Id(1)] string Sku,
    [property: Id(2)] int Bucket,
    [property: Id(3)] DeductionRecord[] Records,
    [property: Id(4)] string[] LogEntryIds);

internal static class PipelineJson
{
    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web);

    public static byte[] Serialize<T>(T value) => JsonSerializer.SerializeToUtf8Bytes(value, Options);

    public static T Deserialize<T>(ReadOnlyMemory<byte> bytes) =>
        JsonSerializer.Deserialize<T>(bytes.Span, Options) ?? throw new JsonException($"empty {typeof(T).Name} payload");

    /// <summary>The message that reaches the deductions stream: one per order, de-duplicated by order id.</summary>
    public static OutgoingMessage ToMessage(DeductionRecord record, string subject) =>
        new(record.OrderId, subject, Serialize(record));
}

/// <summary>
/// Test hook, compiled in and inert unless a test sets it: drops the next N commit events right after the Redis
/// commit, as if the silo had died there. The check-back must then commit them.
/// </summary>
public sealed class PipelineFaults
{
    private int _dropCommitEvents;
    private int _dropped;

    /// <summary>How many commit events this hook has dropped so far.</summary>
    public int Dropped => Volatile.Read(ref _dropped);

    public void DropNextCommitEvents(int count) => Interlocked.Exchange(ref _dropCommitEvents, count);

    public bool ShouldDropCommitEvent()
    {
        while (true)
        {
            var current = Volatile.Read(ref _dropCommitEvents);
            if (current <= 0)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _dropCommitEvents, current - 1, current) == current)
            {
                Interlocked.Increment(ref _dropped);
                return true;
            }
        }
    }
}
