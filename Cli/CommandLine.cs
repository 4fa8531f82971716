using System.Diagnostics;
using System.Net.Http;
using System.Text.Json;
using Spectre.Console;
using Spectre.Console.Json;

namespace OrleansFlashSale.Cli;

/// <summary>The command-line tools behind <c>./flashsale</c>: they talk to a running gateway over HTTP.</summary>
public static class CommandLine
{
    /// <summary>
    /// Usage of each tool and subcommand, shown by <c>./flashsale TOOL [SUBCOMMAND] --help</c> and once after a usage
    /// error: a subcommand's error shows that subcommand's entry only, a tool's error all entries of the tool.
    /// </summary>
    private static readonly (string Command, string Text)[] Usage =
    [
        ("demo", """
            demo [[--stock N]] [[--buckets N]] [[--limit N]] [[--users N]] [[--requests N]] [[--concurrency N]] [[--purchase-tokens true]]
                create a sale and buy it out with simulated users, then print a summary
            """),
        ("sale create", """
            sale create --sku SKU --stock N [[--buckets N]] [[--limit N]] [[--quota-shards N]]
                create a sale (limit 1, and the gateway's defaults: 4 buckets, one quota shard per bucket, unless given)
            """),
        ("sale show", """
            sale show SKU [[--json]]
                stock, remaining, sold and every bucket
            """),
        ("sale rebucket", """
            sale rebucket SKU N
                move the sale to N buckets while it sells
            """),
        ("sale close", """
            sale close SKU
                end the sale now; its per-user limits and replay answers are kept for the payment timeout and the
                record retention, then expire (a sale without an end keeps them until closed)
            """),
        ("order show", """
            order show ORDER_ID [[--json]]
                an order's SKU, buyer, quantity and status (reserved, pending_payment, paid, cancelled, expired)
            """),
        ("verify", """
            verify [[SKU...]] [[--repair]]
                compare Redis, JetStream and MySQL per sale (all sales without SKU); exit 1 on drift;
                --repair re-publishes deductions missing in MySQL and trims forwarded log entries
            """),
        ("token", """
            token USER [[--lifetime SECONDS]]
                print a buyer JWT for USER signed with FlashSale__Auth__SigningKey (for FlashSale:Auth:Mode jwt)
            """),
        ("writer", """
            writer
                the order writer's pace (orders per second into MySQL over the cluster, 0 = full speed)
            writer pace N
                let JetStream hold a burst and write at most N orders per second to MySQL; 0 = full speed
            """),
        ("cluster", """
            cluster
                the Orleans membership (silos, status, last I-am-alive) through the gateway's admin endpoint
            """),
        ("bench", """
            bench [[SCENARIO...]] [[--quick]] [[--silos 1,2,3]] [[--buckets N]]
                measure each scenario against its baseline (same run): persist, deduct, soldout, http, http-soldout,
                pipeline, modes, memory (all without a name); table, JSON, Markdown and PNG charts in results/;
                --silos runs deduct once per silo count; --buckets N gives the sales of deduct, soldout, http,
                http-soldout and pipeline N buckets and N quota shards (default: the default sale, 4 and 4; a full run
                without --buckets also runs deduct and http with 16)
            """),
    ];

    private static readonly string[] HelpWords = ["help", "--help", "-h"];

    public static Task<int> RunAsync(string[] args) => RunAsync(args, bench: null);

    /// <param name="bench">
    /// The bench's entry (arguments after <c>bench</c>), given by the bench executable, which references the grains this
    /// program leaves out; without it <c>bench</c> is a usage error.
    /// </param>
    public static async Task<int> RunAsync(string[] args, Func<string[], Task<int>>? bench)
    {
        var command = args.Length > 0 ? args[0] : "";
        if (Console.IsOutputRedirected)
        {
            // Piped, Spectre assumes 80 columns and breaks sentences mid-phrase; tables still size to their content.
            AnsiConsole.Profile.Width = 200;
        }

        try
        {
            if (HelpWords.Contains(command))
            {
                return Help(args[1..]);
            }

            if (args.Skip(1).Any(a => a is "--help" or "-h"))
            {
                return Help(args);
            }

            return command switch
            {
                "demo" => await DemoCommand.RunAsync(Options.Parse(args[1..], "stock", "buckets", "limit", "users", "requests", "concurrency", "purchase-tokens")),
                "sale" => await SaleAsync(args[1..]),
                "order" => await OrderAsync(args[1..]),
                "verify" => await VerifyCommand.RunAsync(args[1..]),
                "bench" when bench is not null => await bench(args[1..]),
                "bench" => throw new UsageException("bench is a program of its own (OrleansFlashSale.Bench); run it as ./flashsale bench"),
                "token" => TokenCommand.Run(args[1..]),
                "cluster" => await ClusterCommand.RunAsync(args[1..]),
                "writer" => await WriterAsync(args[1..]),
                "" => throw new UsageException("a command is needed"),
                _ => throw new UsageException($"unknown command '{command}'"),
            };
        }
        catch (UsageException ex)
        {
            // The reason, then the usage once: the messages name what is wrong and leave the syntax to the usage.
            var error = Error;
            error.MarkupLine($"[red]error:[/] {Markup.Escape(ex.Message)}");
            var usage = UsageOf(args);
            error.MarkupLine(usage.Count > 0 ? "usage:\n" + string.Join('\n', usage.Select(Format)) : "Run [bold]./flashsale help[/] for usage.");
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

    /// <summary>
    /// Errors go to stderr, so that a script reading a tool's output never parses an error as data. Redirected, the
    /// lines are not wrapped at Spectre's assumed 80 columns: the usage lines are laid out already.
    /// </summary>
    private static IAnsiConsole Error => Unwrapped(Console.Error, Console.IsErrorRedirected);

    private static IAnsiConsole Unwrapped(TextWriter writer, bool redirected)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(writer) });
        if (redirected)
        {
            console.Profile.Width = 1000;
        }

        return console;
    }

    private static string Tool(string command) => command.Split(' ')[0];

    /// <summary>The usage entries of the subcommand <paramref name="args"/> names, else those of its tool.</summary>
    private static List<string> UsageOf(string[] args)
    {
        if (args.Length == 0)
        {
            return [];
        }

        if (args.Length > 1 && Usage.Any(u => u.Command == $"{args[0]} {args[1]}"))
        {
            return [.. Usage.Where(u => u.Command == $"{args[0]} {args[1]}").Select(u => u.Text)];
        }

        return [.. Usage.Where(u => Tool(u.Command) == args[0]).Select(u => u.Text)];
    }

    private static int Help(string[] args)
    {
        var output = Console.IsOutputRedirected ? Unwrapped(Console.Out, redirected: true) : AnsiConsole.Console;
        var usage = UsageOf([.. args.Where(a => !HelpWords.Contains(a))]);
        if (usage.Count > 0)
        {
            output.MarkupLine("usage:\n" + string.Join('\n', usage.Select(Format)));
            return 0;
        }

        output.MarkupLine("[bold]flashsale tools[/] (they use FLASHSALE_GATEWAY_URL and FLASHSALE_ADMIN_TOKEN; see ./flashsale env)\n");
        foreach (var (_, text) in Usage)
        {
            output.MarkupLine(Format(text));
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
                if (args.Length > 1 && !args[1].StartsWith('-'))
                {
                    // sale show, rebucket and close take the SKU first; create names each of its values.
                    throw new UsageException($"sale create takes the SKU as --sku {args[1]}, not as a plain argument");
                }

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
                var (id, json) = OneIdAndJsonFlag(args, "sale show takes exactly one SKU");
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

        var (id, json) = OneIdAndJsonFlag(args, "order show takes exactly one order id");
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
    private static (string Id, bool Json) OneIdAndJsonFlag(string[] args, string error)
    {
        var rest = args[1..];
        var json = rest.Contains("--json");
        var ids = rest.Where(a => a != "--json").ToArray();
        if (ids.Length != 1 || ids[0].StartsWith('-'))
        {
            throw new UsageException($"{error} (and optionally --json)");
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
