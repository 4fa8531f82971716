using OrleansFlashSale.Bench;

namespace OrleansFlashSale.UnitTests;

/// <summary>A printed ratio never reads as meeting a target it missed, or the other way round.</summary>
public sealed class BenchRatioTests
{
    private static BenchFigure Figure(double measured, double baseline, double? target) =>
        new("http", "128 connections", "purchases/s", measured, "how", baseline, "how", target, null, new Dictionary<string, string>());

    [Theory]
    [InlineData(10_821, 18_095, 0.6, "0.598×", false)]
    [InlineData(14_181, 23_082, 0.6, "0.61×", true)]
    [InlineData(5_999, 10_000, 0.6, "0.5999×", false)]
    [InlineData(6_000, 10_000, 0.6, "0.60×", true)]
    [InlineData(10_821, 18_095, null, "0.60×", null)]
    public void The_ratio_shows_as_many_decimals_as_it_takes_to_stay_on_its_side_of_the_target(
        double measured, double baseline, double? target, string shown, bool? met)
    {
        var figure = Figure(measured, baseline, target);

        Assert.Equal(shown, figure.RatioText);
        Assert.Equal(met, figure.TargetsMet);
    }
}
