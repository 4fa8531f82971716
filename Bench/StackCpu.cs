using System.Diagnostics;

namespace OrleansFlashSale.Bench;

/// <summary>
/// CPU time the local stack's processes used over a measurement window, so a figure can say where an operation's
/// cost went (silo, gateway, Redis, MariaDB, NATS, the bench process itself) and not only how many were done.
/// </summary>
/// <remarks>
/// Processes are found by the PID files <c>./flashsale</c> writes under its state directory
/// (<c>FLASHSALE_STATE_DIR</c>); without it only the bench process is counted. Children that do not write a PID file
/// (Redis' AOF rewrite fork) are not counted. A process that ends inside the window is left out of it.
/// </remarks>
public sealed class StackCpu
{
    public const string StateDirVariable = "FLASHSALE_STATE_DIR";

    private readonly string? _stateDir;
    private readonly Dictionary<int, (string Role, TimeSpan Cpu)> _start;

    private StackCpu(string? stateDir)
    {
        _stateDir = stateDir;
        _start = Snapshot(stateDir);
    }

    /// <summary>Starts counting; <paramref name="stateDir"/> defaults to <c>FLASHSALE_STATE_DIR</c>.</summary>
    public static StackCpu Start(string? stateDir = null) =>
        new(stateDir ?? Environment.GetEnvironmentVariable(StateDirVariable));

    /// <summary>CPU used since <see cref="Start"/>, per role; roles that used none are absent.</summary>
    public IReadOnlyDictionary<string, TimeSpan> Stop()
    {
        var used = new SortedDictionary<string, TimeSpan>(StringComparer.Ordinal);
        foreach (var (pid, (role, cpu)) in Snapshot(_stateDir))
        {
            if (_start.TryGetValue(pid, out var before) && before.Role == role && cpu > before.Cpu)
            {
                used[role] = used.GetValueOrDefault(role) + (cpu - before.Cpu);
            }
        }

        return used;
    }

    /// <summary>How a wait for a quiet stack ended: how long it took, and the stack's last one-second CPU share.</summary>
    public sealed record Settling(TimeSpan Waited, bool Quiet, double LastShare)
    {
        public override string ToString() =>
            (Quiet ? $"quiet after {Waited.TotalSeconds:F0} s" : $"still busy after {Waited.TotalSeconds:F0} s")
            + $" (stack {LastShare * 100:F0} % of one core)";
    }

    /// <summary>
    /// Waits until the stack's processes other than this one use less than <paramref name="share"/> of one core over a
    /// one-second sample, or <paramref name="limit"/> has passed, so that a scenario's baseline does not share the
    /// machine with the order pipeline still persisting the previous scenario's purchases.
    /// </summary>
    public static async Task<Settling> WaitForQuietAsync(double share, TimeSpan limit, string? stateDir = null)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var counting = Start(stateDir);
            var sample = Stopwatch.StartNew();
            await Task.Delay(TimeSpan.FromSeconds(1));
            var used = counting.Stop().Where(kv => kv.Key != "bench").Sum(kv => kv.Value.Ticks);
            var last = used / (double)sample.Elapsed.Ticks;
            if (last < share || clock.Elapsed >= limit)
            {
                return new Settling(clock.Elapsed, last < share, last);
            }
        }
    }

    /// <summary>
    /// Detail entries "cpu µs/op &lt;role&gt;" and "cpu µs/op all": CPU per counted operation, the figure that
    /// compares across runs on a machine whose speed moves.
    /// </summary>
    public static IEnumerable<KeyValuePair<string, string>> PerOperation(IReadOnlyDictionary<string, TimeSpan> cpu, long operations)
    {
        if (operations <= 0 || cpu.Count == 0)
        {
            yield break;
        }

        foreach (var (role, used) in cpu)
        {
            yield return new($"cpu µs/op {role}", Format(used, operations));
        }

        yield return new("cpu µs/op all", Format(TimeSpan.FromTicks(cpu.Values.Sum(t => t.Ticks)), operations));
    }

    private static string Format(TimeSpan used, long operations) =>
        (used.TotalMicroseconds / operations).ToString("F1", System.Globalization.CultureInfo.InvariantCulture);

    private static Dictionary<int, (string Role, TimeSpan Cpu)> Snapshot(string? state)
    {
        var found = new Dictionary<int, string> { [Environment.ProcessId] = "bench" };
        if (state is { Length: > 0 } && Directory.Exists(state))
        {
            // Only where ./flashsale and deploy/local/stack.sh put them: the MariaDB data folder alone holds thousands of files.
            var files = new[] { "run", "redis", "mysql", "nats" }
                .Select(folder => Path.Combine(state, folder))
                .Where(Directory.Exists)
                .SelectMany(folder => Directory.EnumerateFiles(folder, "*.pid"));
            foreach (var file in files)
            {
                if (Role(file) is { } role && int.TryParse(File.ReadAllText(file).Trim(), out var pid))
                {
                    found.TryAdd(pid, role);
                }
            }
        }

        var snapshot = new Dictionary<int, (string, TimeSpan)>();
        foreach (var (pid, role) in found)
        {
            try
            {
                using var process = Process.GetProcessById(pid);
                snapshot[pid] = (role, process.TotalProcessorTime);
            }
            catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                // A stale PID file, or a process that ended: nothing of it to count.
            }
        }

        return snapshot;
    }

    /// <summary>run/silo-2.pid → silo, run/gateway-1.pid → gateway, redis/redis.pid → redis, mysql/*.pid → mysql.</summary>
    private static string? Role(string pidFile)
    {
        var name = Path.GetFileNameWithoutExtension(pidFile);
        return Path.GetFileName(Path.GetDirectoryName(pidFile)) switch
        {
            "run" when name.StartsWith("silo", StringComparison.Ordinal) => "silo",
            "run" when name.StartsWith("gateway", StringComparison.Ordinal) => "gateway",
            "redis" => "redis",
            "mysql" => "mysql",
            "nats" => "nats",
            _ => null,
        };
    }
}
