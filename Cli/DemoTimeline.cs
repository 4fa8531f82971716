namespace OrleansFlashSale.Cli;

/// <summary>
/// The demo's answers counted per time bin and outcome. A demo sale is often over in a few seconds, so whole-second
/// bins would draw three points: the bin width adapts to the run so that it has at least <see cref="MinBins"/> bins.
/// </summary>
public sealed record DemoTimeline(TimeSpan BinWidth, int Bins, IReadOnlyDictionary<string, long[]> Counts)
{
    public const int MinBins = 20;

    /// <summary>Widths of 1, 2 and 5 times a power of ten milliseconds, so that the axis reads in round numbers.</summary>
    private static readonly int[] Steps = [1, 2, 5];

    /// <param name="answers">Each answer's time since the sale's first request and its outcome.</param>
    /// <param name="duration">The run's length; an answer after it (clock skew between the two) goes in the last bin.</param>
    public static DemoTimeline Bin(IEnumerable<(TimeSpan Elapsed, string Outcome)> answers, TimeSpan duration)
    {
        var list = answers.ToList();
        var last = list.Count == 0 ? TimeSpan.Zero : list.Max(a => a.Elapsed);
        var span = duration > last ? duration : last;
        var width = WidthFor(span);
        var bins = Math.Max(1, (int)Math.Ceiling(span / width));
        var counts = new SortedDictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var (elapsed, outcome) in list)
        {
            if (!counts.TryGetValue(outcome, out var row))
            {
                counts[outcome] = row = new long[bins];
            }

            row[Math.Clamp((int)(Math.Max(0, elapsed.Ticks) / width.Ticks), 0, bins - 1)]++;
        }

        return new DemoTimeline(width, bins, counts);
    }

    /// <summary>The widest round width that still cuts <paramref name="span"/> into at least <see cref="MinBins"/> bins.</summary>
    public static TimeSpan WidthFor(TimeSpan span)
    {
        var best = TimeSpan.FromMilliseconds(1);
        for (var magnitude = 1L; magnitude <= 1_000_000_000L; magnitude *= 10)
        {
            foreach (var step in Steps)
            {
                var width = TimeSpan.FromMilliseconds(step * magnitude);
                if (span.Ticks / width.Ticks < MinBins)
                {
                    return best;
                }

                best = width;
            }
        }

        return best;
    }

    /// <summary>The bin's count as a rate, so that the chart reads in answers per second whatever the width.</summary>
    public double PerSecond(long count) => count / BinWidth.TotalSeconds;
}
