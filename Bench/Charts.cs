using ScottPlot;

namespace OrleansFlashSale.Bench;

/// <summary>One bar chart per scenario: each figure's measured value next to its baseline.</summary>
public static class Charts
{
    public static void DrawScenario(string scenario, IReadOnlyList<BenchFigure> figures, string path)
    {
        var plot = new Plot();
        var measuredColor = Colors.SteelBlue;
        var baselineColor = Colors.Gray;
        var ticks = new List<Tick>();
        for (var i = 0; i < figures.Count; i++)
        {
            var f = figures[i];
            // Two bars per figure, side by side, a gap between figures.
            if (f.HasBaseline)
            {
                var baseline = plot.Add.Bar(position: i * 3, value: f.Baseline);
                baseline.Color = baselineColor;
            }

            var measured = plot.Add.Bar(position: i * 3 + 1, value: f.Measured);
            measured.Color = measuredColor;
            // The label sits under the middle of the figure's bars, one or two.
            ticks.Add(new Tick(f.HasBaseline ? i * 3 + 0.5 : i * 3 + 1, f.HasBaseline ? $"{f.Name}\n{f.RatioText} baseline" : $"{f.Name}\n{f.Measured:N0} {f.Unit}"));
        }

        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual([.. ticks]);
        plot.Axes.Margins(bottom: 0);
        // A figure's width of room at each end, so that the outer two-line labels are not cut at the image's edge.
        plot.Axes.SetLimitsX(-1, figures.Count * 3 - 1);
        plot.Title(figures.Any(f => f.HasBaseline) ? $"{scenario}: measured (blue) vs baseline (grey)" : $"{scenario}: measured (no baseline)");
        // Figures of different units (a rate next to a lag) share the axis: each bar's label then carries its unit.
        var units = figures.Select(f => f.Unit).Distinct().ToList();
        plot.YLabel(units.Count == 1 ? units[0] : "value (unit under each bar)");
        plot.Legend.IsVisible = false;
        plot.SavePng(path, Math.Max(640, 400 * figures.Count), 480);
    }
}
