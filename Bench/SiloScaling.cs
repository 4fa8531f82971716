using System.Diagnostics;

namespace OrleansFlashSale.Bench;

/// <summary>
/// <c>--silos 1,2,3</c>: runs a scenario once per silo count, scaling the local cluster between runs with
/// <c>./flashsale scale silos N</c> (the same processes an operator runs), and labels each figure with its count.
/// </summary>
public static class SiloScaling
{
    /// <summary>Takes <c>--silos LIST</c> out of the arguments; null when it is not there.</summary>
    public static int[]? Take(string[] args, out string[] rest)
    {
        var index = Array.IndexOf(args, "--silos");
        if (index < 0)
        {
            rest = args;
            return null;
        }

        if (index + 1 >= args.Length)
        {
            throw new UsageException("--silos needs a list of silo counts, e.g. --silos 1,2,3");
        }

        var counts = new List<int>();
        foreach (var part in args[index + 1].Split(',', StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) || n is < 1 or > 16)
            {
                throw new UsageException($"--silos takes silo counts from 1 to 16 separated by commas; '{part}' is not one");
            }

            if (counts.Contains(n))
            {
                throw new UsageException($"--silos lists {n} twice");
            }

            counts.Add(n);
        }

        rest = [.. args[..index], .. args[(index + 2)..]];
        return [.. counts];
    }

    public static async Task<IReadOnlyList<BenchFigure>> RunAsync(int[] silos, Func<Task<IReadOnlyList<BenchFigure>>> run, IBenchProgress progress)
    {
        var figures = new List<BenchFigure>();
        foreach (var n in silos)
        {
            progress.Status($"scaling the cluster to {n} silo process(es)");
            await ScaleAsync(n);
            foreach (var figure in await run())
            {
                var details = new Dictionary<string, string>(figure.Details) { ["silo processes"] = n.ToString(System.Globalization.CultureInfo.InvariantCulture) };
                figures.Add(figure with
                {
                    Name = $"{n} silo{(n == 1 ? "" : "s")}, {figure.Name}",
                    MeasuredHow = figure.MeasuredHow + $"; {n} silo process(es) on this machine",
                    Details = details,
                });
            }
        }

        return figures;
    }

    private static async Task ScaleAsync(int silos)
    {
        var script = Environment.GetEnvironmentVariable("FLASHSALE_SCALE_COMMAND");
        if (string.IsNullOrEmpty(script))
        {
            throw new UsageException("--silos starts and stops silo processes: run it through ./flashsale bench");
        }

        var start = new ProcessStartInfo(script) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("scale");
        start.ArgumentList.Add("silos");
        start.ArgumentList.Add(silos.ToString(System.Globalization.CultureInfo.InvariantCulture));
        // The live table owns the terminal: the script's lines are shown only if it fails.
        start.Environment["FLASHSALE_REBUILD"] = "0";
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {script}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        // Each silo waits up to 60 s to start or to leave; a count of 16 stays well inside this bound.
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(20));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"./flashsale scale silos {silos} exited with {process.ExitCode}: {await stdout}{await stderr}");
        }
    }
}
