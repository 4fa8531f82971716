namespace OrleansFlashSale.Grains;

/// <summary>What a product grain persists (AdoNet grain storage, provider <c>flashsale</c>).</summary>
[GenerateSerializer, Alias("flashsale.ProductState")]
public sealed class ProductState
{
    [Id(0)] public SaleDefinition? Sale { get; set; }

    [Id(1)] public int BucketCount { get; set; }

    [Id(2)] public long LayoutVersion { get; set; }

    /// <summary>Highest bucket count the sale ever had: buckets past the current count may still hold orders.</summary>
    [Id(3)] public int HighestBucketCount { get; set; }

    /// <summary>A re-bucketing written down before it starts, so a crash half-way is finished, not lost.</summary>
    [Id(4)] public RebucketPlan? PendingRebucket { get; set; }

    /// <summary>When an operator closed the sale (its end is then at most this), null while open.</summary>
    [Id(5)] public DateTimeOffset? ClosedAt { get; set; }
}

/// <summary>
/// A layout change: take from <see cref="Sources"/> (amount -1 = all), then give to the new layout. Takes and
/// gives are idempotent per (bucket, version), so running the plan again after a crash moves nothing twice.
/// </summary>
[GenerateSerializer, Immutable, Alias("flashsale.RebucketPlan")]
public sealed record RebucketPlan(
    [property: Id(0)] int FromCount,
    [property: Id(1)] int ToCount,
    [property: Id(2)] long Version,
    [property: Id(3)] int[] Sources,
    [property: Id(4)] long[] Amounts);
