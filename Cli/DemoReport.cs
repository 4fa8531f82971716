using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using ScottPlot;
using Spectre.Console;

namespace OrleansFlashSale.Cli;

/// <summary>
/// The end of <c>./flashsale demo</c>: waits for the books to settle (verify), prints one screen of results and the
/// dashboard's address, and draws the answers per second over the run as a PNG.
/// </summary>
public sealed class DemoReport
{
    /// <summary>How long the pipeline gets to bring every acknowledged order to MySQL before verify is judged.</summary>
    private static readonly TimeSpan SettleTimeout = TimeSpan.FromSeconds(30);

    private readonly ConcurrentQueue<(TimeSpan Elapsed, string Outcome)> _answers = new();

    /// <summary>Notes one answer at <paramref name="elapsed"/> since the sale's first request.</summary>
    public void Record(TimeSpan elapsed, string outcome) => _answers.Enqueue((elapsed, outcome));

    /// <summary>The books as <c>verify</c> sees them once at rest; the last report if they never settle.</summary>
    public static async Task<(JsonElement? Report, bool Settled, string? Error)> VerifyAsync(GatewayClient client, string sku)
    {
        var deadline = DateTime.UtcNow + SettleTimeout;
        JsonElement? last = null;
        while (true)
        {
            var (status, body) = await client.SendAsync(HttpMethod.Get, $"/api/admin/verify/{Uri.EscapeDataString(sku)}", null);
            if (status != 200)
            {
                return (last, false, $"verify answered {status}" + (body.ValueKind == JsonValueKind.Object && body.TryGetProperty("code", out var c) ? $" {c.GetString()}" : ""));
            }

            last = body;
            if (body.GetProperty("atRest").GetBoolean() || DateTime.UtcNow >= deadline)
            {
                return (body, body.GetProperty("atRest").GetBoolean(), null);
            }

            await Task.Delay(500);
        }
    }

    /// <summary>The run's answers per outcome over time as a PNG; the path it was saved to.</summary>
    public string DrawChart(string sku, string directory, TimeSpan duration)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, $"{sku}.png");
        Chart(sku, DemoTimeline.Bin(_answers, duration)).SavePng(path, 900, 420);
        return path;
    }

    /// <summary>One line per outcome, in answers per second per bin; the y axis starts at zero.</summary>
    public static Plot Chart(string sku, DemoTimeline timeline)
    {
        var plot = new Plot();
        var width = timeline.BinWidth.TotalSeconds;
        // Each point sits in the middle of its bin.
        var xs = Enumerable.Range(0, timeline.Bins).Select(b => (b + 0.5) * width).ToArray();
        var top = 0.0;
        foreach (var (outcome, counts) in timeline.Counts)
        {
            var ys = counts.Select(timeline.PerSecond).ToArray();
            top = Math.Max(top, ys.Max());
            var line = plot.Add.Scatter(xs, ys);
            line.LegendText = outcome;
            line.MarkerSize = 3;
            line.LineWidth = 1.5f;
        }

        plot.Title($"{sku}: answers per second by outcome");
        plot.XLabel($"seconds since the first request ({timeline.BinWidth.TotalMilliseconds:0} ms bins)");
        plot.YLabel("answers/s");
        // Beside the data: inside, it hid the sold-out peak at the end of the run.
        plot.ShowLegend(Edge.Right);
        // Autoscaling pads below the lowest point, which put the axis at minus a few hundred answers per second.
        plot.Axes.SetLimitsX(0, timeline.Bins * width);
        plot.Axes.SetLimitsY(0, top > 0 ? top * 1.1 : 1);
        return plot;
    }

    /// <summary>The closing screen; true when the books balance and verify found no drift.</summary>
    public static bool Print(string sku, Uri gateway, long stock, long sold, IReadOnlyDictionary<string, int> answers, int requests,
        TimeSpan elapsed, double[] sortedLatencies, JsonElement? verify, bool settled, string? verifyError, string chart, bool booksBalance)
    {
        static string N(long v) => v.ToString("N0", CultureInfo.InvariantCulture);
        var table = new Table().Border(TableBorder.Rounded).Title($"demo {Markup.Escape(sku)}")
            .AddColumn("measure").AddColumn(new TableColumn("value").RightAligned());
        table.AddRow("sold", $"{N(sold)} of {N(stock)}");
        table.AddRow("accepted (created / replayed)", $"{N(answers.GetValueOrDefault("created"))} / {N(answers.GetValueOrDefault("replayed"))}");
        foreach (var (reason, count) in answers.Where(a => a.Key is not ("created" or "replayed")).OrderByDescending(a => a.Value))
        {
            table.AddRow($"rejected: {Markup.Escape(reason)}", N(count));
        }

        table.AddRow("throughput", $"{requests / elapsed.TotalSeconds:F0} requests/s over {elapsed.TotalSeconds:F1} s");
        table.AddRow("latency p50 / p99", $"{Percentile(sortedLatencies, 0.50):F1} / {Percentile(sortedLatencies, 0.99):F1} ms");
        var drift = true;
        if (verify is { } r)
        {
            var m = r.GetProperty("messages");
            drift = r.GetProperty("drift").GetBoolean() || !settled;
            table.AddRow("persisted in MySQL (live units)", N(r.GetProperty("mySqlLiveUnits").GetInt64()));
            table.AddRow("dead letters / check-max", $"{N(m.GetProperty("deadLettersForSku").GetInt64())} / {N(m.GetProperty("checkMaxForSku").GetInt64())}");
            table.AddRow("drift (verify)", r.GetProperty("drift").GetBoolean()
                ? "[red]some[/]: " + Markup.Escape(string.Join("; ", r.GetProperty("problems").EnumerateArray().Select(p => p.GetString())))
                : settled ? "[green]none[/]" : $"[yellow]not at rest after {SettleTimeout.TotalSeconds:F0} s[/]");
        }
        else
        {
            table.AddRow("drift (verify)", $"[red]unknown[/]: {Markup.Escape(verifyError ?? "no answer")}");
        }

        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"Dashboard: [link]{Markup.Escape(new Uri(gateway, $"dashboard?sku={Uri.EscapeDataString(sku)}").ToString())}[/] (asks for the admin token: FLASHSALE_ADMIN_TOKEN in ./flashsale env)");
        AnsiConsole.MarkupLine($"Chart: {Markup.Escape(chart)}");
        return booksBalance && !drift;
    }

    public static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
}
