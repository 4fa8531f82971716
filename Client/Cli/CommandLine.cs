using System.Diagnostics;
using System.Net.Http;
using System.Text.Json;
using Spectre.Console;
using Spectre.Console.Json;

namespace OrleansFlashSale.Client.Cli;

/// <summary>The command-line tools behind <c>./flashsale</c>: they talk to a running gateway over HTTP.</summary>
public static class CommandLine
{
    /// <summary>Usage of each tool, shown by <c>./flashsale TOOL --help</c> and after a usage error.</summary>
    private static readonly Dictionary<string, string> Usage = new(StringComparer.Ordinal)
    {
        ["demo"] = """
            demo [[--stock N]] [[--buckets N]] [[--limit N]] [[--users N]] [[--requests N]] [[--concurrency N]] [[--purchase-tokens true]]
                create a sale and buy it out with simulated users, then print a summary
            """,
        ["sale"] = """
            sale create --sku SKU --stock N [[--buckets N]] [[--limit N]] [[--quota-shards N]]
                create a sale (limit 1, and the gateway's defaults: 4 buckets, one quota shard per bucket, unless given)
            sale show SKU [[--json]]
                stock, remaining, sold and every bucket
            sale rebucket SKU N
                move the sale to N buckets while it sells
            sale close SKU
                end the sale now; its per-user limits and replay answers are kept for the payment timeout and the
                record retention, then expire (a sale without an end keeps them until closed)
            """,
        ["order"] = """
            order show ORDER_ID [[--json]]
                an order's SKU, buyer, quantity and status (reserved, pending_payment, paid, cancelled, expired)
            """,
        ["verify"] = """
            verify [[SKU...]] [[--repair]]
                compare Redis, JetStream and MySQL per sale (all sales without SKU); exit 1 on drift;
                --repair re-publishes deductions missing in MySQL and trims forwarded log entries
            """,
        ["token"] = """
            token USER [[--lifetime SECONDS]]
                print a buyer JWT for USER signed with FlashSale__Auth__SigningKey (for FlashSale:Auth:Mode jwt)
            """,
        ["writer"] = """
            writer
                the order writer's pace (orders per second into MySQL over the cluster, 0 = full speed)
            writer pace N
                let JetStream hold a burst and write at most N orders per second to MySQL; 0 = full speed
            """,
        ["cluster"] = """
            cluster
                the Orleans membership (silos, status, last I-am-alive) through the gateway's admin endpoint
            """,
        ["bench"] = """
            bench [[SCENARIO...]] [[--quick]] [[--silos 1,2,3]] [[--buckets N]]
                measure each scenario against its baseline (same run): persist, deduct, soldout, http, http-soldout,
                pipeline, modes, memory (all without a name); table, JSON, Markdown and PNG charts in results/;
                --silos runs deduct once per silo count; --buckets N gives the sales of deduct, soldout, http,
                http-soldout and pipeline N buckets and N quota shards (default: the default sale, 4 and 4; a full run
                without --buckets also runs deduct and http with 16)
            """,
    };

    private static readonly string[] HelpWords = ["help", "--help", "-h"];

    public static bool IsCommand(string name) => Usage.ContainsKey(name) || HelpWords.Contains(name);

    public static async Task<int> RunAsync(string[] args)
    {
        var command = args[0];
        try
        {
            if (HelpWords.Contains(command))
            {
                return Help(args.Length > 1 ? args[1] : null);
            }

            if (args.Skip(1).Any(a => a is "--help" or "-h"))
            {
                return Help(command);
            }

            return command switch
            {
                "demo" => await DemoCommand.RunAsync(Options.Parse(args[1..], "stock", "buckets", "limit", "users", "requests", "concurrency", "purchase-tokens")),
                "sale" => await SaleAsync(args[1..]),
                "order" => await OrderAsync(args[1..]),
                "verify" => await VerifyCommand.RunAsync(args[1..]),
                "bench" => await Bench.BenchCommand.RunAsync(args[1..]),
                "token" => TokenCommand.Run(args[1..]),
                "cluster" => await ClusterCommand.RunAsync(args[1..]),
                "writer" => await WriterAsync(args[1..]),
                _ => throw new UsageException($"unknown command '{command}'"),
            };
        }
        catch (UsageException ex)
        {
            Error.MarkupLine($"[red]error:[/] {Markup.Escape(ex.Message)}");
            if (Usage.TryGetValue(command, out var usage))
            {
                Error.MarkupLine("usage:\n" + Format(usage));
            }
            else
            {
                Error.MarkupLine("Run [bold]./flashsale help[/] for usage.");
            }

            return 2;
        }
        catch (HttpRequestException ex)
        {
            Error.MarkupLine($"[red]error:[/] the gateway cannot be reached ({Markup.Escape(ex.Message)}). Is it up? Try [bold]./flashsale up[/].");
            return 1;
        }
        catch (TaskCanceledException ex) when (ex.InnerException is TimeoutException)
        {
            // HttpClient's own timeout: the gateway took the request but never answered.
            Error.MarkupLine($"[red]error:[/] the gateway did not answer in time (FLASHSALE_GATEWAY_TIMEOUT, {GatewayClient.DefaultTimeout.TotalSeconds:0} s unless set); " +
                             "a store it waits on may be down. See [bold]./flashsale status[/] and the silo's log.");
            return 1;
        }
    }

    /// <summary>Errors go to stderr, so that a script reading a tool's output never parses an error as data.</summary>
    private static IAnsiConsole Error => AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });

    private static int Help(string? command)
    {
        if (command is not null && Usage.TryGetValue(command, out var usage))
        {
            AnsiConsole.MarkupLine("usage:\n" + Format(usage));
            return 0;
        }

        AnsiConsole.MarkupLine("[bold]flashsale tools[/] (they use FLASHSALE_GATEWAY_URL and FLASHSALE_ADMIN_TOKEN; see ./flashsale env)\n");
        foreach (var text in Usage.Values)
        {
            AnsiConsole.MarkupLine(Format(text));
        }

        return 0;
    }

    /// <summary>Command lines get the program's name; their explanations stay indented under them.</summary>
    private static string Format(string usage) => string.Join('\n', usage.TrimEnd().Split('\n')
        .Select(line => line.StartsWith(' ') ? "    " + line.TrimStart() : "  [bold]./flashsale[/] " + line));

    private static async Task<int> SaleAsync(string[] args)
    {
        if (args.Length == 0)
        {
            throw new UsageException("sale needs a subcommand: create, show, rebucket or close");
        }

        switch (args[0])
        {
            case "create":
            {
                var o = Options.Parse(args[1..], "sku", "stock", "buckets", "limit", "quota-shards");
                var body = new
                {
                    sku = o.Required("sku"),
                    stock = o.Long("stock", null),
                    buckets = o.IntOrNull("buckets"),
                    perUserLimit = o.Int("limit", 1),
                    quotaShards = o.IntOrNull("quota-shards"),
                };
                using var client = GatewayClient.FromEnvironment();
                return Print(await client.SendAsync(HttpMethod.Post, "/api/sales", body), 201);
            }

            case "show":
            {
                var (id, json) = OneIdAndJsonFlag(args, "sale show SKU");
                using var client = GatewayClient.FromEnvironment();
                var response = await client.SendAsync(HttpMethod.Get, $"/api/sales/{Uri.EscapeDataString(id)}", null);
                return json || response.Status != 200 ? Print(response, 200) : ShowSale(response.Body);
            }

            case "rebucket" when args.Length == 3:
            {
                if (!int.TryParse(args[2], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var buckets) || buckets < 1)
                {
                    throw new UsageException($"'{args[2]}' is not a bucket count (a whole number of at least 1)");
                }

                using var client = GatewayClient.FromEnvironment();
                return Print(await client.SendAsync(HttpMethod.Put, $"/api/sales/{Uri.EscapeDataString(args[1])}/buckets", new { buckets }), 200);
            }

            case "rebucket":
                throw new UsageException("sale rebucket needs a SKU and a bucket count");
            case "close" when args.Length == 2:
            {
                using var client = GatewayClient.FromEnvironment();
                return Print(await client.SendAsync(HttpMethod.Post, $"/api/sales/{Uri.EscapeDataString(args[1])}/close", null), 200);
            }

            case "close":
                throw new UsageException("sale close needs exactly one SKU");
            default:
                throw new UsageException($"unknown sale subcommand '{args[0]}' (create, show, rebucket or close)");
        }
    }

    private static async Task<int> WriterAsync(string[] args)
    {
        using var client = GatewayClient.FromEnvironment();
        switch (args)
        {
            case []:
                return Print(await client.SendAsync(HttpMethod.Get, "/api/admin/writer", null), 200);
            case ["pace", var text]:
                if (!int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var pace)
                    || WriterPace.Validate(pace) is not null)
                {
                    throw new UsageException($"'{text}' is not a pace (orders per second: 0 for full speed, up to {WriterPace.Limit:N0})");
                }

                return Print(await client.SendAsync(HttpMethod.Put, "/api/admin/writer", new { maxOrdersPerSecond = pace }), 200);
            default:
                throw new UsageException("writer takes no argument (show the pace) or 'pace N'");
        }
    }

    private static async Task<int> OrderAsync(string[] args)
    {
        if (args.Length == 0 || args[0] != "show")
        {
            throw new UsageException(args.Length == 0 ? "order needs a subcommand: show" : $"unknown order subcommand '{args[0]}' (show)");
        }

        var (id, json) = OneIdAndJsonFlag(args, "order show ORDER_ID");
        using var client = GatewayClient.FromEnvironment();
        var response = await client.SendAsync(HttpMethod.Get, $"/api/orders/{Uri.EscapeDataString(id)}", null);
        if (json || response.Status != 200)
        {
            return Print(response, 200);
        }

        var table = new Table().Border(TableBorder.Rounded).AddColumn("order").AddColumn(Markup.Escape(response.Body.GetProperty("orderId").GetString() ?? ""));
        foreach (var name in new[] { "sku", "userId", "requestId", "quantity", "status" })
        {
            var value = response.Body.TryGetProperty(name, out var v) ? v.ToString() : "";
            table.AddRow(name, name == "status" ? $"[{StatusColour(value)}]{Markup.Escape(value)}[/]" : Markup.Escape(value));
        }

        AnsiConsole.Write(table);
        return 0;
    }

    /// <summary><c>show ID [--json]</c>: exactly one id.</summary>
    private static (string Id, bool Json) OneIdAndJsonFlag(string[] args, string usage)
    {
        var rest = args[1..];
        var json = rest.Contains("--json");
        var ids = rest.Where(a => a != "--json").ToArray();
        if (ids.Length != 1 || ids[0].StartsWith('-'))
        {
            throw new UsageException($"{usage} takes exactly one id (and optionally --json)");
        }

        return (ids[0], json);
    }

    private static int ShowSale(JsonElement sale)
    {
        var stock = sale.GetProperty("stock").GetInt64();
        var remaining = sale.GetProperty("remaining").GetInt64();
        var state = sale.TryGetProperty("state", out var s) ? s.GetString() ?? "" : "";
        AnsiConsole.MarkupLine($"[bold]{Markup.Escape(sale.GetProperty("sku").GetString() ?? "")}[/]  [{StatusColour(state)}]{Markup.Escape(state)}[/]  "
            + $"stock {stock}, sold [green]{sale.GetProperty("sold").GetInt64()}[/], remaining [yellow]{remaining}[/]");
        if (sale.TryGetProperty("buckets", out var buckets) && buckets.ValueKind == JsonValueKind.Array && buckets.GetArrayLength() > 0)
        {
            var chart = new BarChart().Label("remaining per bucket").Width(Math.Min(100, Math.Max(40, AnsiConsole.Profile.Width)));
            foreach (var bucket in buckets.EnumerateArray())
            {
                var left = bucket.GetProperty("remaining").GetInt64();
                chart.AddItem("b" + bucket.GetProperty("index").GetInt32(), left, left == 0 ? Color.Grey : Color.Green);
            }

            AnsiConsole.Write(chart);
        }

        return 0;
    }

    private static string StatusColour(string status) => status switch
    {
        "active" or "paid" => "green",
        "pending_payment" or "reserved" or "scheduled" => "yellow",
        "sold_out" or "ended" or "cancelled" or "expired" => "grey",
        _ => "default",
    };

    /// <summary>Prints the answer; a problem's code and detail go to stderr with a non-zero exit.</summary>
    internal static int Print((int Status, JsonElement Body) response, int expected)
    {
        var text = response.Body.ValueKind == JsonValueKind.Undefined
            ? ""
            : JsonSerializer.Serialize(response.Body, new JsonSerializerOptions { WriteIndented = true });
        if (response.Status == expected)
        {
            if (Console.IsOutputRedirected || text.Length == 0)
            {
                // Piped into a file or jq: plain JSON, never wrapped at a console width.
                Console.WriteLine(text);
            }
            else
            {
                AnsiConsole.Write(new JsonText(text));
                AnsiConsole.WriteLine();
            }

            return 0;
        }

        var code = response.Body.ValueKind == JsonValueKind.Object && response.Body.TryGetProperty("code", out var c) ? c.GetString() : "http_" + response.Status;
        var detail = response.Body.ValueKind == JsonValueKind.Object && response.Body.TryGetProperty("detail", out var d) ? d.GetString() : null;
        Error.MarkupLine($"[red]error {response.Status} {Markup.Escape(code ?? "")}[/]{(detail is null ? "" : ": " + Markup.Escape(detail))}");
        return 1;
    }
}

public sealed class UsageException(string message) : Exception(message);

/// <summary>Tiny <c>--name value</c> parser; unknown, repeated or malformed flags are usage errors.</summary>
public sealed class Options
{
    private readonly Dictionary<string, string> _values;

    private Options(Dictionary<string, string> values) => _values = values;

    /// <param name="allowed">The flags the command knows; empty: any.</param>
    public static Options Parse(string[] args, params string[] allowed)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || args[i].Length == 2)
            {
                throw new UsageException($"expected --name value, got '{args[i]}'");
            }

            var name = args[i][2..];
            if (allowed.Length > 0 && !allowed.Contains(name))
            {
                throw new UsageException($"unknown option '--{name}' (known: {string.Join(", ", allowed.Select(a => "--" + a))})");
            }

            if (i + 1 >= args.Length || args[i + 1].StartsWith("--", StringComparison.Ordinal))
            {
                throw new UsageException($"--{name} needs a value");
            }

            if (!values.TryAdd(name, args[++i]))
            {
                throw new UsageException($"--{name} is given twice");
            }
        }

        return new Options(values);
    }

    public string Required(string name) =>
        _values.TryGetValue(name, out var value) ? value : throw new UsageException($"--{name} is required");

    public int Int(string name, int fallback)
    {
        var value = Long(name, fallback);
        return value <= int.MaxValue ? (int)value : throw new UsageException($"--{name} must be at most {int.MaxValue}, got {value}");
    }

    /// <summary>The flag's value, or null when it is absent (the server's default applies).</summary>
    public int? IntOrNull(string name) => _values.ContainsKey(name) ? Int(name, 0) : null;

    public bool Bool(string name, bool fallback)
    {
        if (!_values.TryGetValue(name, out var text))
        {
            return fallback;
        }

        return bool.TryParse(text, out var value) ? value : throw new UsageException($"--{name} must be true or false, got '{text}'");
    }

    /// <param name="fallback">The value when the flag is absent; null makes the flag required.</param>
    public long Long(string name, long? fallback)
    {
        if (!_values.TryGetValue(name, out var text))
        {
            return fallback ?? throw new UsageException($"--{name} is required");
        }

        return long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new UsageException($"--{name} must be a non-negative whole number, got '{text}'");
    }
}
