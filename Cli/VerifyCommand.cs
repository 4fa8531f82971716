using System.Net.Http;
using System.Text.Json;
using Spectre.Console;

namespace OrleansFlashSale.Cli;

/// <summary>
/// <c>./flashsale verify [sku…] [--repair]</c>: the books of each sale from <c>GET /api/admin/verify/{sku}</c>.
/// Exit 0 when no sale drifts, 1 on drift or an error answer, 2 on usage errors.
/// </summary>
public static class VerifyCommand
{
    // After a repair the re-published orders need the writer's round trip before the books balance.
    private static readonly TimeSpan SettleWithin = TimeSpan.FromSeconds(20);

    public static async Task<int> RunAsync(string[] args)
    {
        using var client = GatewayClient.FromEnvironment();
        return await RunAsync(args, client);
    }

    /// <summary>The command against a given gateway (tests point it at their own).</summary>
    public static async Task<int> RunAsync(string[] args, GatewayClient client)
    {
        var repair = false;
        var skus = new List<string>();
        foreach (var arg in args)
        {
            if (arg == "--repair")
            {
                repair = true;
            }
            else if (arg.StartsWith('-'))
            {
                throw new UsageException($"unknown option '{arg}' (verify takes SKUs and --repair)");
            }
            else
            {
                skus.Add(arg);
            }
        }

        if (skus.Count == 0)
        {
            var (status, body) = await client.SendAsync(HttpMethod.Get, "/api/admin/sales", null);
            if (status != 200)
            {
                return CommandLine.Print((status, body), 200);
            }

            skus.AddRange(body.GetProperty("skus").EnumerateArray().Select(e => e.GetString()!));
            if (skus.Count == 0)
            {
                AnsiConsole.MarkupLine("[green]no sales, no drift[/]");
                return 0;
            }
        }

        var exit = 0;
        foreach (var sku in skus)
        {
            exit = Math.Max(exit, await VerifyOneAsync(client, sku, repair));
        }

        return exit;
    }

    private static async Task<int> VerifyOneAsync(GatewayClient client, string sku, bool repair)
    {
        var path = $"/api/admin/verify/{Uri.EscapeDataString(sku)}";
        var (status, report) = await client.SendAsync(HttpMethod.Get, path + (repair ? "?repair=true" : ""), null);
        if (status != 200)
        {
            AnsiConsole.Markup($"[bold]{Markup.Escape(sku)}[/]: ");
            return CommandLine.Print((status, report), 200);
        }

        Show(report);
        if (!repair || !report.TryGetProperty("repair", out var done))
        {
            return Bool(report, "drift") ? 1 : 0;
        }

        var republished = done.GetProperty("republished").GetInt32();
        var trimmed = done.GetProperty("trimmed").GetInt32();
        AnsiConsole.MarkupLine($"repair: re-published [bold]{republished}[/] orders, trimmed [bold]{trimmed}[/] log entries");
        if (!Bool(report, "drift") && republished == 0)
        {
            return 0;
        }

        // Verify again (without repair) until the writer has stored what was re-published, or give up.
        var deadline = DateTime.UtcNow + SettleWithin;
        while (true)
        {
            (status, report) = await client.SendAsync(HttpMethod.Get, path, null);
            if (status != 200)
            {
                return CommandLine.Print((status, report), 200);
            }

            if (!Bool(report, "drift") && Bool(report, "atRest") || DateTime.UtcNow > deadline)
            {
                AnsiConsole.MarkupLine("after repair:");
                Show(report);
                return Bool(report, "drift") ? 1 : 0;
            }

            await Task.Delay(500);
        }
    }

    private static void Show(JsonElement r)
    {
        var sku = r.GetProperty("sku").GetString() ?? "";
        var table = new Table().Border(TableBorder.Rounded).Title($"[bold]{Markup.Escape(sku)}[/]");
        table.AddColumn("check");
        table.AddColumn(new TableColumn("left").RightAligned());
        table.AddColumn(new TableColumn("right").RightAligned());
        table.AddColumn("");
        foreach (var name in new[] { "redisEquation", "inventoryEquation" })
        {
            var e = r.GetProperty(name);
            var holds = Bool(e, "holds");
            table.AddRow(
                Markup.Escape(e.GetProperty("text").GetString() ?? name),
                e.GetProperty("left").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture),
                e.GetProperty("right").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture),
                holds ? "[green]holds[/]" : "[red]off[/]");
        }

        AnsiConsole.Write(table);
        var stock = r.GetProperty("stock").GetInt64();
        var remaining = r.GetProperty("redisRemaining").GetInt64();
        var live = r.GetProperty("mySqlLiveUnits").GetInt64();
        AnsiConsole.MarkupLine($"stock {stock} = redis remaining {remaining} + sold per redis {stock - remaining}; mysql live units {live}, " +
            $"available_stock {(r.TryGetProperty("availableStock", out var a) ? a.GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture) : "none")}, " +
            $"inventory_log rows {r.GetProperty("inventoryLogRows").GetInt64()}");
        foreach (var s in r.GetProperty("mySqlOrders").EnumerateArray())
        {
            AnsiConsole.MarkupLine($"  {Markup.Escape(s.GetProperty("status").GetString() ?? "")}: {s.GetProperty("orders").GetInt64()} orders, {s.GetProperty("units").GetInt64()} units");
        }

        var m = r.GetProperty("messages");
        AnsiConsole.MarkupLine($"jetstream: half {m.GetProperty("halfMessagesForSku").GetInt64()} (all {m.GetProperty("halfMessages").GetInt64()}), " +
            $"dead letters {m.GetProperty("deadLettersForSku").GetInt64()} (all {m.GetProperty("deadLetters").GetInt64()}), " +
            $"check-max {m.GetProperty("checkMaxForSku").GetInt64()} (all {m.GetProperty("checkMax").GetInt64()}), writer backlog {m.GetProperty("writerPending").GetInt64()}");
        if (r.TryGetProperty("redisCommittedOrders", out var logged) && logged.ValueKind == JsonValueKind.Number)
        {
            AnsiConsole.MarkupLine($"orders logged by the buckets {logged.GetInt64()}, in mysql {r.GetProperty("mySqlOrders").EnumerateArray().Sum(s => s.GetProperty("orders").GetInt64())}");
        }

        Ids(r, "pendingInPipeline", "in flight (younger than the grace period)", "yellow");
        Ids(r, "missingInMySql", "missing in MySQL", "red");
        Ids(r, "unknownToRedis", "unknown to Redis", "red");
        if (r.TryGetProperty("ordersWithoutProof", out var unproven) && unproven.ValueKind == JsonValueKind.Number && unproven.GetInt64() > 0)
        {
            // Counted, so not drift: the marker or request record expired with the records' TTL.
            AnsiConsole.MarkupLine($"{unproven.GetInt64()} orders no longer have a Redis proof (expired records; their bucket's counts balance)");
        }

        if (r.GetProperty("untrimmedLogEntries").GetInt64() is > 0 and var untrimmed)
        {
            AnsiConsole.MarkupLine($"[yellow]{untrimmed} Redis log entries already in MySQL (trim with --repair)[/]");
        }

        if (r.TryGetProperty("unitsInRemovedBuckets", out var removed) && removed.GetInt64() is > 0 and var stranded)
        {
            AnsiConsole.MarkupLine($"[red]{stranded} units in buckets removed by re-bucketing, outside the live layout " +
                "(re-bucket to the most buckets the sale had, then back, to move them to live buckets)[/]");
        }

        if (!Bool(r, "atRest"))
        {
            AnsiConsole.MarkupLine("[yellow]not at rest: orders are in flight, the equations may be off for now[/]");
        }

        if (Bool(r, "drift"))
        {
            foreach (var p in r.GetProperty("problems").EnumerateArray())
            {
                AnsiConsole.MarkupLine($"[red]drift: {Markup.Escape(p.GetString() ?? "")}[/]");
            }
        }
        else
        {
            AnsiConsole.MarkupLine("[green]no drift[/]");
        }
    }

    private static void Ids(JsonElement r, string name, string label, string color)
    {
        var list = r.GetProperty(name);
        var count = list.GetProperty("count").GetInt64();
        if (count == 0)
        {
            return;
        }

        var ids = list.GetProperty("orderIds").EnumerateArray().Select(e => e.GetString()).ToList();
        var more = count > ids.Count ? $" … and {count - ids.Count} more" : "";
        // Unknown orders are counted per bucket; once proofs expired, the ids are that bucket's orders without one.
        var among = ids.Count > count ? " among" : "";
        AnsiConsole.MarkupLine($"[{color}]{count} {label}{among}:[/] {Markup.Escape(string.Join(", ", ids))}{more}");
    }

    private static bool Bool(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.True;
}
