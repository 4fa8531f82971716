using System.Text.RegularExpressions;

namespace OrleansFlashSale;

/// <summary>The limits every entry point checks the same way (gateway, grains, command line).</summary>
public static partial class SaleRules
{
    public const int MaxSkuLength = 64;
    public const long MaxStock = 1_000_000_000;
    public const int MaxBuckets = 1024;
    public const int MaxIdLength = 64;
    public const int MaxPerUserLimit = 1_000_000;
    public const int MaxQuotaShards = 256;
    /// <summary>
    /// Buckets of a sale created without saying: few, because every bucket's batches pay their own script, half
    /// message and commit, and the fewer the buckets the larger the batches. docs/hot-path.md has the figures
    /// (1, 4 and 16 buckets) this was chosen from; a sale on a Redis Cluster wants at least one bucket per master.
    /// </summary>
    public const int DefaultBuckets = 4;
    public const int DefaultPaymentTimeoutSeconds = 900;

    /// <summary>
    /// One quota shard per bucket unless asked otherwise: shard N's users have bucket N as their home, where a
    /// purchase is one script. Users of shards without a bucket of their own take the slower overflow path.
    /// </summary>
    public static int DefaultQuotaShardsFor(int buckets) => Math.Clamp(buckets, 1, MaxQuotaShards);
    public const int MaxPaymentTimeoutSeconds = 7 * 24 * 3600;

    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$", RegexOptions.CultureInvariant)]
    private static partial Regex SkuPattern();

    public static bool IsValidSku(string? sku) => sku is not null && SkuPattern().IsMatch(sku);

    /// <summary>Returns null when the definition is acceptable, else a message naming the first bad field.</summary>
    public static string? Validate(SaleDefinition sale)
    {
        if (!IsValidSku(sale.Sku))
        {
            return "sku must be 1-64 characters of A-Z a-z 0-9 . _ -";
        }

        if (sale.Stock is < 1 or > MaxStock)
        {
            return $"stock must be between 1 and {MaxStock}";
        }

        if (sale.Buckets < 1 || sale.Buckets > MaxBuckets || sale.Buckets > sale.Stock)
        {
            return $"buckets must be between 1 and {MaxBuckets} and not more than the stock";
        }

        if (sale.PerUserLimit is < 1 or > MaxPerUserLimit)
        {
            return $"perUserLimit must be between 1 and {MaxPerUserLimit}";
        }

        if (sale.StartsAt is { } start && sale.EndsAt is { } end && end <= start)
        {
            return "endsAt must be after startsAt";
        }

        if (sale.PaymentTimeoutSeconds < 1 || sale.PaymentTimeoutSeconds > MaxPaymentTimeoutSeconds)
        {
            return $"paymentTimeoutSeconds must be between 1 and {MaxPaymentTimeoutSeconds}";
        }

        if (sale.QuotaShards is < 1 or > MaxQuotaShards)
        {
            return $"quotaShards must be between 1 and {MaxQuotaShards}";
        }

        if (sale.Mode is not (SaleModes.Redis or SaleModes.Database))
        {
            return $"mode must be '{SaleModes.Redis}' or '{SaleModes.Database}'";
        }

        return null;
    }

    /// <summary>Returns null when the bucket count is acceptable for the sale.</summary>
    public static string? ValidateBucketCount(int buckets, long stock) =>
        buckets < 1 || buckets > MaxBuckets || buckets > stock
            ? $"buckets must be between 1 and {MaxBuckets} and not more than the stock ({stock})"
            : null;

    /// <summary>Ids are opaque to us but end up in Redis keys, MySQL rows and logs: keep them short and printable.</summary>
    public static string? ValidateId(string? value, string name)
    {
        if (string.IsNullOrEmpty(value))
        {
            return $"{name} is required";
        }

        if (value.Length > MaxIdLength)
        {
            return $"{name} must be at most {MaxIdLength} characters";
        }

        for (var i = 0; i < value.Length;)
        {
            if (System.Text.Rune.DecodeFromUtf16(value.AsSpan(i), out var rune, out var used) != System.Buffers.OperationStatus.Done)
            {
                return $"{name} must be valid Unicode text";
            }

            if (System.Text.Rune.IsControl(rune))
            {
                return $"{name} must not contain control characters";
            }

            i += used;
        }

        return null;
    }

    /// <summary>
    /// Splits stock evenly over the buckets; the remainder (the "fragments") goes one unit each to the first
    /// buckets, so the parts always add up to the whole.
    /// </summary>
    public static long[] Split(long stock, int buckets)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(buckets, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(stock);
        var parts = new long[buckets];
        var share = stock / buckets;
        var remainder = stock % buckets;
        for (var i = 0; i < buckets; i++)
        {
            parts[i] = share + (i < remainder ? 1 : 0);
        }

        return parts;
    }
}
