using OrleansFlashSale.Bench;

namespace OrleansFlashSale.UnitTests;

public sealed class RuntimeWarmthTests
{
    [Fact]
    public void The_JIT_time_is_read_from_the_runtime_meters_line_of_a_Prometheus_exposition()
    {
        const string exposition = """
            # TYPE dotnet_jit_compilation_time_seconds_total counter
            # HELP dotnet_jit_compilation_time_seconds_total The time the JIT compiler spent compiling methods.
            dotnet_jit_compilation_time_seconds_total{otel_scope_name="System.Runtime"} 2.3904999
            # TYPE dotnet_jit_compiled_il_size_bytes_total counter
            dotnet_jit_compiled_il_size_bytes_total{otel_scope_name="System.Runtime"} 1284134
            """;
        Assert.Equal(2.3904999, RuntimeWarmth.Parse(exposition));
    }

    [Fact]
    public void An_exposition_without_the_runtime_meter_has_no_JIT_time() =>
        Assert.Null(RuntimeWarmth.Parse("# TYPE flashsale_purchases_total counter\nflashsale_purchases_total 3\n"));
}
