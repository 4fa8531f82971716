namespace OrleansFlashSale;

public static class PipelineStreams
{
    /// <summary>Orleans stream provider carrying committed deductions from buckets to the bridge.</summary>
    public const string Provider = "flashsale-pipeline";

    /// <summary>Stream namespace; the stream key is <see cref="Key"/>, so one bridge activation per bucket.</summary>
    public const string Namespace = "flashsale.deductions";

    /// <summary>
    /// One stream per bucket, not per SKU: a pulling agent hands a stream's events to its consumer one at a time,
    /// each a grain call, so a single stream per SKU would carry every bucket's transactions in single file and keep
    /// them waiting between the bucket and the bridge on a busy machine (docs/performance-history.md has the
    /// measurement). Per bucket, the streams are delivered side by side.
    /// </summary>
    public static string Key(string sku, int bucket) => $"{sku}#{bucket}";
}

/// <summary>A bucket's script call committed these deductions in Redis; the bridge commits them to JetStream.</summary>
[GenerateSerializer, Immutable, Alias("flashsale.DeductionsCommitted")]
public sealed record DeductionsCommitted(
    [property: Id(0)] HalfMessageHandle Half,
    [property: Id(1)] string Sku,
    [property: Id(2)] int Bucket,
    [property: Id(3)] DeductionRecord[] Records,
    [property: Id(4)] string[] LogEntryIds);
