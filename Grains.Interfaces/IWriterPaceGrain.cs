namespace OrleansFlashSale;

/// <summary>
/// The order writer's pace, one per cluster (key 0), read by every silo's writer about once a second. Full speed
/// (the default) writes orders to MySQL as fast as they come. A pace lets JetStream hold a burst and drains it at
/// most that many orders per second, so a flash sale's peak does not become MySQL's peak: acknowledged orders are
/// safe in the deductions stream meanwhile, and reach MySQL later.
/// </summary>
[Alias("flashsale.IWriterPaceGrain")]
public interface IWriterPaceGrain : IGrainWithIntegerKey
{
    [Alias("Get")]
    Task<WriterPace> GetAsync();

    /// <summary>Sets the pace in orders per second over all silos' writers; 0 is full speed.</summary>
    [Alias("Set")]
    Task<WriterPace> SetAsync(int maxOrdersPerSecond);
}

/// <summary>At most <see cref="MaxOrdersPerSecond"/> orders per second into MySQL, cluster-wide; 0 = full speed.</summary>
[GenerateSerializer, Immutable, Alias("flashsale.WriterPace")]
public sealed record WriterPace(
    [property: Id(0)] int MaxOrdersPerSecond,
    [property: Id(1)] DateTimeOffset? ChangedAt)
{
    public const int Limit = 10_000_000;

    public static readonly WriterPace FullSpeed = new(0, null);

    public bool IsFullSpeed => MaxOrdersPerSecond == 0;

    public static string? Validate(int maxOrdersPerSecond) => maxOrdersPerSecond is < 0 or > Limit
        ? $"maxOrdersPerSecond must be 0 (full speed) to {Limit:N0}"
        : null;
}
