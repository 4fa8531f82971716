using OrleansFlashSale.Cli;

namespace OrleansFlashSale.UnitTests;

/// <summary>The demo chart's time bins: a sale of a few seconds still draws a curve, counted exactly.</summary>
public sealed class DemoTimelineTests
{
    [Fact]
    public void A_sale_of_two_and_a_half_seconds_gets_at_least_twenty_bins_that_add_up_to_the_answers()
    {
        var duration = TimeSpan.FromMilliseconds(2500);
        var answers = Answers(duration, 6000);

        var timeline = DemoTimeline.Bin(answers, duration);

        Assert.True(timeline.Bins >= DemoTimeline.MinBins, $"{timeline.Bins} bins of {timeline.BinWidth.TotalMilliseconds} ms");
        Assert.Equal(TimeSpan.FromMilliseconds(100), timeline.BinWidth);
        Assert.Equal(25, timeline.Bins);
        Assert.Equal(["created", "limit_exceeded", "sold_out"], timeline.Counts.Keys);
        Assert.All(timeline.Counts.Values, row => Assert.Equal(timeline.Bins, row.Length));
        Assert.All(timeline.Counts.Values.SelectMany(row => row), count => Assert.True(count >= 0));
        foreach (var outcome in timeline.Counts.Keys)
        {
            Assert.Equal(answers.Count(a => a.Outcome == outcome), timeline.Counts[outcome].Sum());
        }

        // 6000 answers spread evenly over 25 bins: 240 per bin, a third of them each outcome.
        Assert.All(Enumerable.Range(0, timeline.Bins), b => Assert.Equal(240, timeline.Counts.Values.Sum(row => row[b])));
    }

    [Theory]
    [InlineData(0, 1, 1)]
    [InlineData(150, 5, 30)]
    [InlineData(2500, 100, 25)]
    [InlineData(3999, 100, 40)]
    [InlineData(4000, 200, 20)]
    [InlineData(60_000, 2000, 30)]
    [InlineData(3_600_000, 100_000, 36)]
    public void The_bin_width_is_the_widest_round_one_with_at_least_twenty_bins(int milliseconds, int widthMilliseconds, int bins)
    {
        var duration = TimeSpan.FromMilliseconds(milliseconds);
        var timeline = DemoTimeline.Bin([], duration);
        Assert.Equal(TimeSpan.FromMilliseconds(widthMilliseconds), timeline.BinWidth);
        Assert.Equal(bins, timeline.Bins);
    }

    [Fact]
    public void An_answer_at_or_after_the_end_is_counted_in_the_last_bin_and_none_is_lost()
    {
        var duration = TimeSpan.FromMilliseconds(2500);
        var timeline = DemoTimeline.Bin([(TimeSpan.Zero, "created"), (duration, "created"), (duration + TimeSpan.FromMilliseconds(1), "sold_out")], duration);
        Assert.Equal(1, timeline.Counts["created"][0]);
        Assert.Equal(1, timeline.Counts["created"][^1]);
        Assert.Equal(1, timeline.Counts["sold_out"][^1]);
        Assert.Equal(3, timeline.Counts.Values.Sum(row => row.Sum()));
    }

    [Fact]
    public void The_chart_y_axis_starts_at_zero_and_holds_the_highest_rate()
    {
        // As a demo goes: orders for the first second, then sold-out answers; each line is zero for part of the run.
        var duration = TimeSpan.FromMilliseconds(2500);
        var answers = Enumerable.Range(0, 2000).Select(i => (TimeSpan.FromSeconds(i / 2000.0), "created"))
            .Concat(Enumerable.Range(0, 4000).Select(i => (TimeSpan.FromSeconds(1 + (1.5 * i / 4000)), "sold_out")));
        var timeline = DemoTimeline.Bin(answers, duration);
        var highest = timeline.Counts.Values.Max(row => timeline.PerSecond(row.Max()));

        var plot = DemoReport.Chart("demo-test", timeline);
        // Limits as drawn: rendering autoscales whatever the chart left unset.
        plot.GetImage(900, 420).Dispose();
        var limits = plot.Axes.GetLimits();

        Assert.Equal(0, limits.Bottom);
        Assert.True(limits.Top >= highest, $"top {limits.Top}, highest rate {highest}");
        Assert.Equal(0, limits.Left);
        Assert.Equal(2.5, limits.Right, 6);
    }

    /// <summary><paramref name="count"/> answers evenly over the duration, the outcomes taking turns.</summary>
    private static List<(TimeSpan Elapsed, string Outcome)> Answers(TimeSpan duration, int count)
    {
        string[] outcomes = ["created", "sold_out", "limit_exceeded"];
        return [.. Enumerable.Range(0, count).Select(i => (duration * i / count, outcomes[i % outcomes.Length]))];
    }
}
