using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Spectre.Console;

namespace OrleansFlashSale.Bench;

/// <summary>
/// <c>./flashsale bench [scenario…] [--quick]</c>: runs each scenario against its baseline in the same process and
/// run, shows a table, and writes JSON, a Markdown summary and one PNG chart per scenario under <c>results/</c>.
/// </summary>
public static class BenchCommand
{
    // A scenario starts once the stack (silo, gateway, Redis, NATS, MariaDB) is this idle, or after the limit: the
    // order pipeline catches up on a previous scenario's purchases for seconds after it ended. An idle stack uses a
    // few percent of one core (timers, pulls, health checks).
    private const double QuietShare = 0.15;
    private static readonly TimeSpan QuietLimit = TimeSpan.FromSeconds(90);

    public static readonly string[] Scenarios =
    [
        PersistScenario.Name, DeductScenario.Name, SoldOutScenario.Name, HttpScenario.Name, HttpScenario.SoldOutName,
        PipelineScenario.Name, ModesScenario.Name, MemoryScenario.Name,
    ];

    /// <summary>
    /// <c>--buckets N</c>: the grain scenarios' sales get N buckets and N quota shards (1 to 256) instead of the default sale's;
    /// the raw baselines spread their stock over the same N keys. <c>modes</c> keeps its own tiers.
    /// </summary>
    internal static SaleShape? TakeBuckets(string[] args, out string[] rest)
    {
        var index = Array.IndexOf(args, "--buckets");
        if (index < 0)
        {
            rest = args;
            return null;
        }

        if (index + 1 >= args.Length
            || !int.TryParse(args[index + 1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var buckets)
            || buckets is < 1 or > SaleRules.MaxQuotaShards)
        {
            throw new UsageException($"--buckets takes one whole number from 1 to {SaleRules.MaxQuotaShards} (buckets and quota shards of the benchmark's sales)" +
                (index + 1 < args.Length ? $"; '{args[index + 1]}' is not one" : ""));
        }

        if (Array.IndexOf(args, "--buckets", index + 1) >= 0)
        {
            throw new UsageException("--buckets is given twice");
        }

        rest = [.. args[..index], .. args[(index + 2)..]];
        return new SaleShape(buckets, buckets);
    }

    public static async Task<int> RunAsync(string[] args)
    {
        var quick = args.Contains("--quick");
        var silos = SiloScaling.Take(args, out var afterSilos);
        var shape = TakeBuckets(afterSilos, out var rest);
        var chosen = rest.Where(a => a != "--quick").ToList();
        foreach (var name in chosen)
        {
            if (!Scenarios.Contains(name))
            {
                throw new UsageException($"unknown bench scenario '{name}'; known: {string.Join(", ", Scenarios)} (and --quick)");
            }
        }

        if (chosen.Count == 0)
        {
            chosen = [.. Scenarios];
        }

        var settings = new BenchSettings(quick, shape);
        var started = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        var figures = new List<BenchFigure>();
        var failures = new List<string>();
        var settling = new Dictionary<string, string>();
        var table = new Table().Border(TableBorder.Rounded).Title("flashsale bench" + (quick ? " --quick" : ""))
            .AddColumn("scenario").AddColumn("figure").AddColumn(new TableColumn("measured").RightAligned())
            .AddColumn(new TableColumn("baseline").RightAligned()).AddColumn(new TableColumn("ratio").RightAligned())
            .AddColumn("target");
        await AnsiConsole.Live(new Rows(table, new Markup("starting"))).AutoClear(false).StartAsync(async ctx =>
        {
            var progress = new LiveProgress(ctx, table);
            foreach (var name in chosen)
            {
                progress.Status($"{name}: waiting for the stack to settle (under {QuietShare:P0} of one core)");
                settling[name] = (await StackCpu.WaitForQuietAsync(QuietShare, QuietLimit)).ToString();
                try
                {
                    IReadOnlyList<BenchFigure> results = name switch
                    {
                        PersistScenario.Name => await PersistScenario.FromEnvironment().RunAsync(settings, progress),
                        DeductScenario.Name when silos is not null =>
                            await SiloScaling.RunAsync(silos, () => DeductScenario.RunAsync(settings, progress), progress),
                        DeductScenario.Name => await WithSixteenAsync(settings, s => DeductScenario.RunAsync(s, progress)),
                        SoldOutScenario.Name => await SoldOutScenario.RunAsync(settings, progress),
                        HttpScenario.Name => await WithSixteenAsync(settings, s => HttpScenario.RunAsync(s, progress, soldOut: false)),
                        HttpScenario.SoldOutName => await HttpScenario.RunAsync(settings, progress, soldOut: true),
                        PipelineScenario.Name => await PipelineScenario.RunAsync(settings, progress),
                        ModesScenario.Name => await ModesScenario.RunAsync(settings, progress),
                        MemoryScenario.Name => await MemoryScenario.RunAsync(settings, progress),
                        _ => throw new UsageException($"unknown scenario {name}"),
                    };
                    foreach (var figure in results)
                    {
                        figures.Add(figure);
                        table.AddRow(figure.Scenario, Markup.Escape(figure.Name), $"{figure.Measured:N0} {figure.Unit}",
                            figure.HasBaseline ? $"{figure.Baseline:N0}" : "–", figure.HasBaseline ? figure.RatioText : "–", TargetText(figure));
                    }
                }
                catch (Exception ex) when (ex is not UsageException)
                {
                    // A scenario that fails, or whose books do not balance, reports no figure; the others still run.
                    failures.Add($"{name}: {ex.GetType().Name}: {ex.Message}");
                    table.AddRow(name, "[red]failed, no figure[/]", "", "", "", Markup.Escape(ex.Message.Length > 60 ? ex.Message[..60] + "…" : ex.Message));
                }

                ctx.Refresh();
            }

            ctx.UpdateTarget(new Rows(table, new Markup($"done in {clock.Elapsed.TotalSeconds:F0} s")));
        });

        PrintCosts(figures);
        var folder = WriteResults(started, clock.Elapsed, args, quick, figures, failures, settling);
        AnsiConsole.MarkupLine($"Results in [bold]{Markup.Escape(folder)}[/]");
        foreach (var failure in failures)
        {
            AnsiConsole.MarkupLine($"[red]{Markup.Escape(failure)}[/]");
        }

        return failures.Count == 0 ? 0 : 1;
    }

    /// <summary>
    /// The scenario with the default sale, then (in a full run without <c>--buckets</c>) again with 16 buckets, so
    /// every run shows what the bucket count costs on the machine it runs on.
    /// </summary>
    private static async Task<IReadOnlyList<BenchFigure>> WithSixteenAsync(BenchSettings settings, Func<BenchSettings, Task<IReadOnlyList<BenchFigure>>> run)
    {
        var figures = new List<BenchFigure>(await run(settings));
        if (settings.Sales is null && !settings.Quick && SaleShape.Default != SaleShape.Sixteen)
        {
            await StackCpu.WaitForQuietAsync(QuietShare, QuietLimit);
            figures.AddRange(await run(settings with { Sales = SaleShape.Sixteen }));
        }

        return figures;
    }

    /// <summary>What each figure cost, under the table: CPU per operation of every process, Redis and JetStream calls.</summary>
    private static void PrintCosts(IReadOnlyList<BenchFigure> figures)
    {
        var costs = new Table().Border(TableBorder.Rounded).Title("cost per operation (measured run; baseline in results.json)")
            .AddColumn("scenario").AddColumn("figure").AddColumn(new TableColumn("CPU µs, all").RightAligned())
            .AddColumn("CPU µs by process").AddColumn(new TableColumn("Redis cmds").RightAligned())
            .AddColumn(new TableColumn("JetStream API").RightAligned());
        foreach (var f in figures)
        {
            string Get(string key) => f.Details.TryGetValue("measured." + key, out var v) || f.Details.TryGetValue(key, out v) ? v : "";
            var byProcess = f.Details
                .Where(kv => kv.Key.Replace("measured.", "", StringComparison.Ordinal).StartsWith("cpu µs/op ", StringComparison.Ordinal)
                    && !kv.Key.StartsWith("baseline.", StringComparison.Ordinal) && !kv.Key.EndsWith(" all", StringComparison.Ordinal))
                .Select(kv => $"{kv.Key[(kv.Key.LastIndexOf(' ') + 1)..]} {kv.Value}");
            var all = Get("cpu µs/op all");
            if (all.Length > 0)
            {
                costs.AddRow(f.Scenario, Markup.Escape(f.Name), all, Markup.Escape(string.Join(", ", byProcess)),
                    Markup.Escape(Get("redis cmds/op")), Markup.Escape(Get("jetstream api/op")));
            }
        }

        if (costs.Rows.Count > 0)
        {
            AnsiConsole.Write(costs);
        }
    }

    private static string TargetText(BenchFigure figure) =>
        figure.TargetsMet is not { } met ? "" : (met ? "[green]met[/] " : "[red]not met[/] ") + Markup.Escape(figure.TargetWords);

    private static string WriteResults(DateTimeOffset started, TimeSpan elapsed, string[] args, bool quick,
        List<BenchFigure> figures, List<string> failures, IReadOnlyDictionary<string, string> settling)
    {
        var root = Environment.GetEnvironmentVariable("FLASHSALE_RESULTS_DIR") is { Length: > 0 } dir ? dir : Path.Combine(Environment.CurrentDirectory, "results");
        var folder = Path.Combine(root, $"bench-{started:yyyyMMdd-HHmmss}");
        Directory.CreateDirectory(folder);
        var command = "./flashsale bench" + (args.Length > 0 ? " " + string.Join(' ', args) : "");
        var machine = Machine.Describe();

        var charts = new Dictionary<string, string>();
        foreach (var scenario in figures.GroupBy(f => f.Scenario))
        {
            var path = Path.Combine(folder, $"{scenario.Key}.png");
            Charts.DrawScenario(scenario.Key, [.. scenario], path);
            charts[scenario.Key] = Path.GetFileName(path);
        }

        var report = new
        {
            date = started.ToString("u"),
            durationSeconds = Math.Round(elapsed.TotalSeconds, 1),
            command,
            quick,
            machine,
            note = "Shared, noisy machine: absolute numbers move with other users' load; the ratio to a baseline measured in the same run is the figure that counts.",
            figures = figures.Select(f => new
            {
                f.Scenario,
                f.Name,
                f.Unit,
                measured = Math.Round(f.Measured),
                f.MeasuredHow,
                baseline = Math.Round(f.Baseline),
                f.BaselineHow,
                ratio = f.HasBaseline ? Math.Round(f.Ratio, f.RatioDigits) : (double?)null,
                f.TargetRatio,
                f.TargetAbsolute,
                f.TargetMax,
                f.TargetCondition,
                f.TargetConditionMet,
                f.TargetsMet,
                f.Details,
            }),
            failures,
            settling,
            charts,
        };
        File.WriteAllText(Path.Combine(folder, "results.json"), JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));

        var md = new StringBuilder();
        md.AppendLine($"# flashsale bench — {started:yyyy-MM-dd HH:mm} UTC").AppendLine();
        md.AppendLine($"- command: `{command}` ({elapsed.TotalSeconds:F0} s)");
        md.AppendLine($"- machine: {machine.Cores} cores, {machine.MemoryGiB:F1} GiB memory, {machine.Os}; load average {machine.LoadAverage} at the end; shared and noisy, so compare ratios, not absolute figures");
        md.AppendLine();
        md.AppendLine("| scenario | figure | measured | baseline | ratio | target |");
        md.AppendLine("|---|---|---:|---:|---:|---|");
        foreach (var f in figures)
        {
            var target = f.TargetsMet is { } met ? $"{(met ? "met" : "**not met**")} ({f.TargetWords})" : "";
            md.AppendLine($"| {f.Scenario} | {f.Name} | {f.Measured:N0} {f.Unit} | {(f.HasBaseline ? $"{f.Baseline:N0}" : "–")} | " +
                $"{(f.HasBaseline ? f.RatioText : "–")} | {target} |");
        }

        md.AppendLine();
        foreach (var scenario in figures.GroupBy(f => f.Scenario))
        {
            md.AppendLine($"## {scenario.Key}").AppendLine();
            if (settling.TryGetValue(scenario.Key, out var settled))
            {
                md.AppendLine($"Started once the stack was quiet: {settled}.").AppendLine();
            }

            md.AppendLine($"Baseline: {scenario.First().BaselineHow}.").AppendLine();
            foreach (var f in scenario)
            {
                md.AppendLine($"- **{f.Name}**: {f.MeasuredHow}. " + string.Join("; ", f.Details.Select(kv => $"{kv.Key} {kv.Value}")));
            }

            md.AppendLine().AppendLine($"![{scenario.Key}]({charts[scenario.Key]})").AppendLine();
        }

        foreach (var failure in failures)
        {
            md.AppendLine($"- FAILED, no figure: {failure}");
        }

        File.WriteAllText(Path.Combine(folder, "summary.md"), md.ToString());
        return folder;
    }

    private sealed class LiveProgress(LiveDisplayContext context, Table table) : IBenchProgress
    {
        private readonly Lock _gate = new();
        private long _lastRefresh;

        public void Status(string text)
        {
            // The live display is not thread-safe and a refresh costs; status lines come from one loop at a time.
            lock (_gate)
            {
                var now = Stopwatch.GetTimestamp();
                if (Stopwatch.GetElapsedTime(_lastRefresh, now) > TimeSpan.FromMilliseconds(200))
                {
                    _lastRefresh = now;
                    context.UpdateTarget(new Rows(table, new Markup("[grey]" + Markup.Escape(text) + "[/]")));
                }
            }
        }
    }
}

/// <summary>What the figures were measured on.</summary>
public sealed record Machine(int Cores, double MemoryGiB, string Os, string Runtime, string LoadAverage)
{
    public static Machine Describe()
    {
        double memory = 0;
        try
        {
            // MemTotal is in kB.
            var line = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
            if (line is not null && long.TryParse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], out var kb))
            {
                memory = kb / 1024.0 / 1024.0;
            }
        }
        catch (IOException)
        {
        }

        // The load at the end of the run tells a reader how much else was competing for the cores.
        var load = "";
        try
        {
            load = string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
        }

        return new Machine(Environment.ProcessorCount, Math.Round(memory, 1),
            System.Runtime.InteropServices.RuntimeInformation.OSDescription,
            System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription, load);
    }
}
