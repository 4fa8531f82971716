using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using ScottPlot;
using Spectre.Console;

namespace OrleansFlashSale.Client.Cli;

/// <summary>
/// The end of <c>./flashsale demo</c>: waits for the books to settle (verify), prints one screen of results and the
/// dashboard's address, and draws the answers per second as a PNG.
/// </summary>
public sealed class DemoReport
{
    /// <summary>How long the pipeline gets to bring every acknowledged order to MySQL before verify is judged.</summary>
    private static readonly TimeSpan SettleTimeout = TimeSpan.FromSeconds(30);

    private readonly ConcurrentDictionary<(int Second, string Outcome), int> _timeline = new();

    /// <summary>Notes one answer at <paramref name="elapsed"/> since the sale's first request.</summary>
    public void Record(TimeSpan elapsed, string outcome) =>
        _timeline.AddOrUpdate(((int)elapsed.TotalSeconds, outcome), 1, (_, n) => n + 1);

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

    /// <summary>One line per answer per second of the run, by outcome.</summary>
    public string DrawChart(string sku, string directory)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, $"{sku}.png");
        var seconds = _timeline.Keys.Select(k => k.Second).DefaultIfEmpty(0).Max() + 1;
        var plot = new Plot();
        foreach (var outcome in _timeline.Keys.Select(k => k.Outcome).Distinct().Order(StringComparer.Ordinal))
        {
            var xs = Enumerable.Range(0, seconds).Select(s => (double)s).ToArray();
            var ys = xs.Select(s => (double)_timeline.GetValueOrDefault(((int)s, outcome))).ToArray();
            var line = plot.Add.Scatter(xs, ys);
            line.LegendText = outcome;
            line.MarkerSize = 4;
        }

        plot.Title($"{sku}: answers per second");
        plot.XLabel("seconds since the first request");
        plot.YLabel("answers/s");
        plot.ShowLegend(Alignment.UpperRight);
        plot.SavePng(path, 900, 420);
        return path;
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
