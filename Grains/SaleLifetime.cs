namespace OrleansFlashSale.Grains;

/// <summary>
/// How long a sale's per-user counters and request records live in Redis. They carry the per-user
/// limit and the replay answers, so they must outlive every purchase the sale can still see: its end plus the
/// payment timeout (a cancel or an expiry still returns units until then), plus the retention operators chose
/// (<c>FlashSale:Deduction:RecordTtlHours</c>) for late replays, check-backs and repairs. A sale without an end keeps
/// them until an operator closes it (<see cref="IProductGrain.CloseAsync"/>), which ends it and gives them that TTL.
/// </summary>
internal static class SaleLifetime
{
    /// <summary>No expiry: the scripts write the keys without a TTL.</summary>
    public const long Keep = 0;

    /// <summary>The TTL in seconds to write now, or <see cref="Keep"/>.</summary>
    public static long RecordTtlSeconds(SaleDefinition sale, DateTimeOffset now, TimeSpan retention)
    {
        if (sale.EndsAt is not { } end)
        {
            return Keep;
        }

        var until = end.AddSeconds(sale.PaymentTimeoutSeconds) - now + retention;
        return (long)Math.Ceiling(Math.Max(until.TotalSeconds, retention.TotalSeconds));
    }

    /// <summary>The TTL a closed sale's records get: the payment timeout still running, plus the retention.</summary>
    public static TimeSpan AfterClose(SaleDefinition sale, TimeSpan retention) =>
        TimeSpan.FromSeconds(sale.PaymentTimeoutSeconds) + retention;
}
