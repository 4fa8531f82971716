using System.Diagnostics;
using OrleansFlashSale.Bench;

namespace OrleansFlashSale.UnitTests;

/// <summary>The bench's CPU accounting: processes found by the stack's PID files, CPU per operation.</summary>
public sealed class StackCpuTests : IDisposable
{
    private readonly string _state = Directory.CreateTempSubdirectory("flashsale-cpu-").FullName;

    [Fact]
    public async Task A_process_named_by_a_pid_file_is_counted_under_its_role()
    {
        Directory.CreateDirectory(Path.Combine(_state, "run"));
        Directory.CreateDirectory(Path.Combine(_state, "redis"));
        // A stale PID file must be skipped, not fail the measurement.
        await File.WriteAllTextAsync(Path.Combine(_state, "redis", "redis.pid"), "999999999");

        // A child that counts to 300,000 in the shell (well over 10 ms of CPU), says so, then waits to be killed.
        using var busy = Process.Start(new ProcessStartInfo("sh", ["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo counted; sleep 60"])
        {
            RedirectStandardOutput = true,
        })!;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(_state, "run", "silo-1.pid"), busy.Id.ToString());
            var cpu = StackCpu.Start(_state);
            Assert.Equal("counted", await busy.StandardOutput.ReadLineAsync());
            var used = cpu.Stop();

            Assert.True(used.TryGetValue("silo", out var silo) && silo > TimeSpan.Zero, $"silo CPU: {silo}");
            Assert.False(used.ContainsKey("redis"));
            Assert.DoesNotContain("gateway", used.Keys);

            var details = StackCpu.PerOperation(used, 1_000).ToDictionary();
            Assert.Equal((silo.TotalMicroseconds / 1_000).ToString("F1", System.Globalization.CultureInfo.InvariantCulture), details["cpu µs/op silo"]);
            Assert.Equal(
                (used.Values.Sum(t => t.TotalMicroseconds) / 1_000).ToString("F1", System.Globalization.CultureInfo.InvariantCulture),
                details["cpu µs/op all"]);
        }
        finally
        {
            busy.Kill(entireProcessTree: true);
            await busy.WaitForExitAsync();
        }
    }

    [Fact]
    public void No_operations_give_no_per_operation_figures() =>
        Assert.Empty(StackCpu.PerOperation(new Dictionary<string, TimeSpan> { ["bench"] = TimeSpan.FromSeconds(1) }, 0));

    public void Dispose() => Directory.Delete(_state, recursive: true);
}
