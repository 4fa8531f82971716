namespace OrleansFlashSale.Client.Api.Dashboard;

/// <summary>
/// Purchase answers of this gateway per SKU, outcome and second, over the last <see cref="WindowSeconds"/>. The
/// gateway counts what buyers were told, so the dashboard needs no metrics backend; with several gateways each one
/// shows its own share.
/// </summary>
public sealed class PurchaseRates(TimeProvider time)
{
    public const int WindowSeconds = 300;

    /// <summary>Bounds memory whatever SKUs buyers send: past this the stalest SKU is forgotten.</summary>
    public const int MaxSkus = 256;

    /// <summary>The outcomes counted; anything else is <c>other</c>, so the set stays small and fixed.</summary>
    public static readonly string[] Outcomes =
    [
        "created", "replayed", ErrorCodes.SoldOut, ErrorCodes.LimitExceeded, ErrorCodes.NotStarted, ErrorCodes.Ended,
        ErrorCodes.InvalidRequest, ErrorCodes.Unavailable, "other",
    ];

    private readonly Dictionary<string, Series> _series = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    public void Record(string sku, string outcome)
    {
        var index = Array.IndexOf(Outcomes, outcome);
        if (index < 0)
        {
            index = Outcomes.Length - 1;
        }

        var second = time.GetUtcNow().ToUnixTimeSeconds();
        lock (_lock)
        {
            if (!_series.TryGetValue(sku, out var series))
            {
                if (_series.Count >= MaxSkus)
                {
                    _series.Remove(_series.MinBy(s => s.Value.LastSecond).Key);
                }

                series = new Series();
                _series[sku] = series;
            }

            series.Add(second, index);
        }
    }

    /// <summary>Counts per outcome for each of the last <see cref="WindowSeconds"/> whole seconds, oldest first.</summary>
    public RateWindow Read(string sku)
    {
        // The current second is still filling; the window ends with the last complete one.
        var end = time.GetUtcNow().ToUnixTimeSeconds() - 1;
        var start = end - WindowSeconds + 1;
        var counts = Outcomes.ToDictionary(o => o, _ => new long[WindowSeconds], StringComparer.Ordinal);
        lock (_lock)
        {
            if (_series.TryGetValue(sku, out var series))
            {
                for (var second = start; second <= end; second++)
                {
                    var slot = (int)(second % WindowSeconds);
                    if (series.Seconds[slot] != second)
                    {
                        continue;
                    }

                    for (var o = 0; o < Outcomes.Length; o++)
                    {
                        counts[Outcomes[o]][second - start] = series.Counts[slot, o];
                    }
                }
            }
        }

        return new RateWindow(start, counts);
    }

    /// <summary>A ring of per-second counters: a slot is reused once its second has left the window.</summary>
    private sealed class Series
    {
        public long[] Seconds { get; } = new long[WindowSeconds];

        public long[,] Counts { get; } = new long[WindowSeconds, Outcomes.Length];

        public long LastSecond { get; private set; }

        public void Add(long second, int outcome)
        {
            var slot = (int)(second % WindowSeconds);
            if (Seconds[slot] != second)
            {
                Seconds[slot] = second;
                for (var o = 0; o < Outcomes.Length; o++)
                {
                    Counts[slot, o] = 0;
                }
            }

            Counts[slot, outcome]++;
            LastSecond = second;
        }
    }
}

/// <param name="StartUnixSeconds">The second of the first count.</param>
/// <param name="Counts">Per outcome, one count per second.</param>
public sealed record RateWindow(long StartUnixSeconds, IReadOnlyDictionary<string, long[]> Counts);
