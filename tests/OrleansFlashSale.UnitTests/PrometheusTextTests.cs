using OrleansFlashSale.Bench;

namespace OrleansFlashSale.UnitTests;

public sealed class PrometheusTextTests
{
    private const string Exposition = """
        # TYPE flashsale_deduct_batch_size histogram
        flashsale_deduct_batch_size_bucket{le="1"} 4
        flashsale_deduct_batch_size_sum{otel_scope_name="OrleansFlashSale"} 1234.5
        flashsale_deduct_batch_size_count 27
        """;

    [Theory]
    [InlineData("flashsale_deduct_batch_size_sum", 1234.5)]
    [InlineData("flashsale_deduct_batch_size_count", 27.0)]
    public void A_sample_is_read_with_or_without_labels(string name, double expected) =>
        Assert.Equal(expected, PrometheusText.Sample(Exposition, name));

    [Theory]
    [InlineData("flashsale_deduct_batch_size")]
    [InlineData("flashsale_deduct_batch_size_su")]
    [InlineData("flashsale_purchases_total")]
    public void A_name_that_only_starts_another_metrics_name_has_no_sample(string name) =>
        Assert.Null(PrometheusText.Sample(Exposition, name));
}
