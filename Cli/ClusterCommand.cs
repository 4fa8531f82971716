using System.Text.Json;
using Spectre.Console;

namespace OrleansFlashSale.Cli;

/// <summary><c>cluster</c>: the Orleans membership from the gateway's admin endpoint, as a table.</summary>
public static class ClusterCommand
{
    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length > 0)
        {
            throw new UsageException($"cluster takes no arguments, got '{string.Join(' ', args)}'");
        }

        using var client = GatewayClient.FromEnvironment();
        var (status, body) = await client.SendAsync(HttpMethod.Get, "/api/admin/cluster", null);
        if (status != 200)
        {
            return CommandLine.Print((status, body), 200);
        }

        var table = new Table().Border(TableBorder.Rounded)
            .Title($"cluster membership ({body.GetProperty("active").GetInt32()} active) via {Markup.Escape(client.BaseAddress.ToString())}")
            .AddColumn(new TableColumn("silo endpoint").NoWrap()).AddColumn("generation").AddColumn("status").AddColumn("gateway")
            .AddColumn("started").AddColumn("alive at").AddColumn("votes")
            .Caption("times UTC; alive at = last I-am-alive written; votes = suspicions by other silos");
        // Each restart of a silo leaves its old incarnation in the table as Dead (Orleans removes them after days):
        // the newest generation per endpoint is what an operator asks about; the older ones are only counted.
        var all = body.GetProperty("members").EnumerateArray().ToList();
        var newest = all.GroupBy(m => m.GetProperty("endpoint").GetString())
            .Select(g => g.OrderByDescending(m => m.GetProperty("generation").GetInt32()).First())
            .ToList();
        if (all.Count > newest.Count)
        {
            table.Caption($"times UTC; alive at = last I-am-alive written; votes = suspicions by other silos; {all.Count - newest.Count} older dead incarnation(s) not shown");
        }

        foreach (var m in newest)
        {
            var state = m.GetProperty("status").GetString() ?? "";
            var colour = state switch { "Active" => "green", "Dead" => "grey", _ => "yellow" };
            table.AddRow(
                Markup.Escape(m.GetProperty("endpoint").GetString() ?? ""),
                m.GetProperty("generation").GetInt32().ToString(System.Globalization.CultureInfo.InvariantCulture),
                $"[{colour}]{Markup.Escape(state)}[/]",
                m.GetProperty("gatewayPort").GetInt32().ToString(System.Globalization.CultureInfo.InvariantCulture),
                Time(m, "startTime"),
                Time(m, "iAmAliveTime"),
                m.GetProperty("suspectVotes").GetInt32().ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        AnsiConsole.Write(table);
        return 0;
    }

    private static string Time(JsonElement member, string name) =>
        member.GetProperty(name).TryGetDateTime(out var t) ? t.ToUniversalTime().ToString("HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture) : "";
}
