using System.Diagnostics;
using System.Globalization;

namespace OrleansFlashSale.Bench;

/// <summary>
/// Runs <c>wrk</c> (installed by <c>deploy/local/stack.sh install</c>, which <c>./flashsale bench</c> runs through
/// <c>up</c>) with a Lua script that posts purchases with varying users and fresh request ids, and counts each
/// status code so a run can be checked against the books.
/// </summary>
public static class Wrk
{
    /// <summary>One wrk run: status counts, latency percentiles (all answers) and socket errors.</summary>
    /// <param name="Costs">
    /// CPU µs per request of each process of the stack and of wrk itself ("cpu µs/op wrk"), Redis commands and
    /// JetStream API calls per request, all over the run (see <see cref="StackCpu"/> and <see cref="ServiceCalls"/>).
    /// </param>
    public sealed record Result(IReadOnlyDictionary<int, long> Statuses, double P50Ms, double P99Ms, long Requests,
        TimeSpan Duration, long SocketErrors, IReadOnlyDictionary<string, string>? Costs = null)
    {
        public long Count(int status) => Statuses.GetValueOrDefault(status);
    }

    // Per thread: a counter for request ids (thread id + counter keep them unique across threads and runs' prefixes),
    // users spread over `users`; done() prints the merged status counts and percentiles for the parser below.
    private const string Script = """
        local threads = {}
        local counter = 0
        function setup(thread)
          thread:set("id", #threads)
          table.insert(threads, thread)
        end
        function init(args)
          prefix = args[1]
          users = tonumber(args[2])
          path = args[3]
          statuses = {}
          wrk.headers["Content-Type"] = "application/json"
        end
        function request()
          counter = counter + 1
          local n = counter * 64 + id
          local body = string.format('{"userId":"u%d","quantity":1,"requestId":"%s-%d"}', n % users, prefix, n)
          return wrk.format("POST", path, nil, body)
        end
        function response(status, headers, body)
          statuses[status] = (statuses[status] or 0) + 1
        end
        function done(summary, latency, requests)
          local merged = {}
          for _, t in ipairs(threads) do
            for status, count in pairs(t:get("statuses")) do
              merged[status] = (merged[status] or 0) + count
            end
          end
          for status, count in pairs(merged) do
            io.write(string.format("FSB status %d %d\n", status, count))
          end
          io.write(string.format("FSB p50 %d\n", latency:percentile(50)))
          io.write(string.format("FSB p99 %d\n", latency:percentile(99)))
          io.write(string.format("FSB requests %d\n", summary.requests))
          io.write(string.format("FSB duration %d\n", summary.duration))
          local e = summary.errors
          io.write(string.format("FSB errors %d\n", e.connect + e.read + e.write + e.timeout))
        end
        """;

    public static void EnsureInstalled()
    {
        var found = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':')
            .Any(dir => dir.Length > 0 && File.Exists(Path.Combine(dir, "wrk")));
        if (!found)
        {
            throw new BenchCheckException("wrk is not installed: run ./flashsale bench (it installs it through deploy/local/stack.sh install) or apt-get install wrk");
        }
    }

    /// <param name="url">Base address, e.g. http://127.0.0.1:5080.</param>
    /// <param name="path">The purchase path on it.</param>
    /// <param name="prefix">Request id prefix, unique per run so no request is a replay of another run's.</param>
    public static async Task<Result> RunAsync(string url, string path, string prefix, int users, int connections, TimeSpan duration)
    {
        var script = Path.Combine(Path.GetTempPath(), $"flashsale-bench-{Environment.ProcessId}.lua");
        await File.WriteAllTextAsync(script, Script);
        try
        {
            // Two threads: the machine's cores are shared with the system under test anyway.
            var start = new ProcessStartInfo("wrk")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var arg in new[]
                     {
                         "-t", "2", "-c", connections.ToString(CultureInfo.InvariantCulture),
                         "-d", $"{Math.Max(1, (int)Math.Round(duration.TotalSeconds))}s", "--timeout", "10s", "-s", script,
                         url.TrimEnd('/') + path, "--", prefix, users.ToString(CultureInfo.InvariantCulture), path,
                     })
            {
                start.ArgumentList.Add(arg);
            }

            await using var calls = await ServiceCalls.StartAsync();
            var cpu = StackCpu.Start();
            var childrenBefore = ReapedChildrenCpu();
            using var process = Process.Start(start) ?? throw new BenchCheckException("wrk did not start");
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            var used = new Dictionary<string, TimeSpan>(cpu.Stop());
            // wrk is reaped by now, so its CPU is in this process's children's time.
            used["wrk"] = ReapedChildrenCpu() - childrenBefore;
            var output = await stdout;
            if (process.ExitCode != 0)
            {
                throw new BenchCheckException($"wrk exited with {process.ExitCode}: {(await stderr).Trim()} {output.Trim()}");
            }

            var result = Parse(output);
            var costs = StackCpu.PerOperation(used, result.Requests).Concat(await calls.StopAsync(result.Requests)).ToDictionary();
            return result with { Costs = costs };
        }
        finally
        {
            File.Delete(script);
        }
    }

    /// <summary>User and system CPU of this process's reaped children (/proc/self/stat cutime + cstime).</summary>
    private static TimeSpan ReapedChildrenCpu()
    {
        try
        {
            var stat = File.ReadAllText("/proc/self/stat");
            // Fields after the command name (which may hold spaces) start at state, field 3; cutime and cstime are 16 and 17.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var ticks = long.Parse(fields[13], CultureInfo.InvariantCulture) + long.Parse(fields[14], CultureInfo.InvariantCulture);
            return TimeSpan.FromSeconds(ticks / 100.0); // USER_HZ is 100 on Linux
        }
        catch (Exception ex) when (ex is IOException or FormatException or IndexOutOfRangeException or UnauthorizedAccessException)
        {
            return TimeSpan.Zero;
        }
    }

    private static Result Parse(string output)
    {
        var statuses = new Dictionary<int, long>();
        var values = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var line in output.Split('\n'))
        {
            var parts = line.Trim().Split(' ');
            if (parts.Length == 4 && parts[0] == "FSB" && parts[1] == "status")
            {
                statuses[int.Parse(parts[2], CultureInfo.InvariantCulture)] = long.Parse(parts[3], CultureInfo.InvariantCulture);
            }
            else if (parts.Length == 3 && parts[0] == "FSB")
            {
                values[parts[1]] = long.Parse(parts[2], CultureInfo.InvariantCulture);
            }
        }

        foreach (var key in new[] { "p50", "p99", "requests", "duration", "errors" })
        {
            if (!values.ContainsKey(key))
            {
                throw new BenchCheckException($"wrk printed no {key}: {output.Trim()}");
            }
        }

        // wrk reports latency and duration in microseconds.
        return new Result(statuses, values["p50"] / 1000.0, values["p99"] / 1000.0, values["requests"],
            TimeSpan.FromMicroseconds(values["duration"]), values["errors"]);
    }
}
