using System.Diagnostics;

namespace OrleansFlashSale.Tests;

/// <summary>
/// Stops and starts the real services of the local stack through <c>deploy/local/stack.sh</c>, with this process's
/// environment, so the FLASHSALE_* variables that chose the stack the suite runs against also choose what is stopped.
/// </summary>
public static class LocalStack
{
    private static readonly Lazy<string> Script = new(FindScript);

    public static Task StopAsync(string service) => RunAsync("stop-one", service);

    public static Task StartAsync(string service) => RunAsync("start-one", service);

    /// <summary>SIGKILL, as a crash or the OOM killer would: no shutdown, nothing flushed that was not already.</summary>
    public static Task Kill9Async(string service) => RunAsync("kill9", service);

    /// <summary>Any stack.sh command, e.g. <c>("kill9", "redis-node", "2")</c>.</summary>
    public static async Task RunAsync(string command, params string[] arguments)
    {
        var service = string.Join(' ', arguments);
        var start = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Script.Value);
        start.ArgumentList.Add(command);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {Script.Value}");
        // Both pipes are drained concurrently, or a chatty script could block on a full one.
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        // stop-one escalates to SIGKILL after 20 s and start-one waits 30 s at most, so this bound is never the normal path.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"stack.sh {command} {service} exited with {process.ExitCode}: {await stdout}{await stderr}");
        }
    }

    /// <summary>The script of this checkout: walk up from the test binaries to the repository root.</summary>
    private static string FindScript()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "deploy", "local", "stack.sh");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException($"deploy/local/stack.sh not found above {AppContext.BaseDirectory}");
    }
}
