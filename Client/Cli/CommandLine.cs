using System.Diagnostics;
using System.Net.Http;
using System.Text.Json;
using Spectre.Console;

namespace OrleansFlashSale.Client.Cli;

/// <summary>The command-line tools behind <c>./flashsale</c>: they talk to a running gateway over HTTP.</summary>
public static class CommandLine
{
    private static readonly string[] Commands = ["demo", "sale", "verify", "bench", "token", "cluster", "help", "--help", "-h"];

    public static bool IsCommand(string name) => Commands.Contains(name);

    public static async Task<int> RunAsync(string[] args)
    {
        try
        {
            return args[0] switch
            {
                "demo" => await DemoCommand.RunAsync(Options.Parse(args[1..])),
                "sale" => await SaleAsync(args[1..]),
                "verify" => await VerifyCommand.RunAsync(args[1..]),
                "bench" => await Bench.BenchCommand.RunAsync(args[1..]),
                "token" => TokenCommand.Run(args[1..]),
                "cluster" => await ClusterCommand.RunAsync(args[1..]),
                _ => Help(),
            };
        }
        catch (UsageException ex)
        {
            AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(ex.Message)}");
            AnsiConsole.MarkupLine("Run [bold]./flashsale help[/] for usage.");
            return 2;
        }
        catch (HttpRequestException ex)
        {
            AnsiConsole.MarkupLine($"[red]error:[/] the gateway cannot be reached ({Markup.Escape(ex.Message)}). Is it up? Try [bold]./flashsale up[/].");
            return 1;
        }
    }

    private static int Help()
    {
        AnsiConsole.MarkupLine("""
            [bold]flashsale tools[/] (they use FLASHSALE_GATEWAY_URL and FLASHSALE_ADMIN_TOKEN; see ./flashsale env)

              demo [[--stock N]] [[--buckets N]] [[--limit N]] [[--users N]] [[--requests N]] [[--concurrency N]] [[--purchase-tokens true]]
                  create a sale and buy it out with simulated users, then print a summary
              sale create --sku SKU --stock N --buckets N [[--limit N]] [[--quota-shards N]]
              sale show SKU
              sale rebucket SKU N
              verify [[SKU...]] [[--repair]]
                  compare Redis, JetStream and MySQL per sale (all sales without SKU); exit 1 on drift;
                  --repair re-publishes deductions missing in MySQL and trims forwarded log entries
              token USER [[--lifetime SECONDS]]
                  print a buyer JWT for USER signed with FlashSale__Auth__SigningKey (for FlashSale:Auth:Mode jwt)
              cluster
                  the Orleans membership (silos, status, last I-am-alive) through the gateway's admin endpoint
              bench [[persist]] [[deduct]] [[soldout]] [[--quick]] [[--silos 1,2,3]]
                  measure each scenario against its baseline (same run); table, JSON, Markdown and PNG charts in results/
            """);
        return 0;
    }

    private static async Task<int> SaleAsync(string[] args)
    {
        if (args.Length == 0)
        {
            throw new UsageException("sale needs a subcommand: create, show or rebucket");
        }

        using var client = GatewayClient.FromEnvironment();
        switch (args[0])
        {
            case "create":
            {
                var o = Options.Parse(args[1..]);
                var body = new
                {
                    sku = o.Required("sku"),
                    stock = o.Long("stock", 0),
                    buckets = o.Int("buckets", 8),
                    perUserLimit = o.Int("limit", 1),
                    quotaShards = o.Int("quota-shards", 16),
                };
                return Print(await client.SendAsync(HttpMethod.Post, "/api/sales", body), 201);
            }

            case "show" when args.Length == 2:
                return Print(await client.SendAsync(HttpMethod.Get, $"/api/sales/{Uri.EscapeDataString(args[1])}", null), 200);
            case "rebucket" when args.Length == 3:
                if (!int.TryParse(args[2], out var buckets))
                {
                    throw new UsageException($"'{args[2]}' is not a bucket count");
                }

                return Print(await client.SendAsync(HttpMethod.Put, $"/api/sales/{Uri.EscapeDataString(args[1])}/buckets", new { buckets }), 200);
            default:
                throw new UsageException($"unknown or incomplete sale command: {string.Join(' ', args)}");
        }
    }

    /// <summary>Prints the answer; a problem's code and detail go to stderr with a non-zero exit.</summary>
    internal static int Print((int Status, JsonElement Body) response, int expected)
    {
        var text = response.Body.ValueKind == JsonValueKind.Undefined
            ? ""
            : JsonSerializer.Serialize(response.Body, new JsonSerializerOptions { WriteIndented = true });
        if (response.Status == expected)
        {
            Console.WriteLine(text);
            return 0;
        }

        var code = response.Body.ValueKind == JsonValueKind.Object && response.Body.TryGetProperty("code", out var c) ? c.GetString() : "http_" + response.Status;
        var detail = response.Body.ValueKind == JsonValueKind.Object && response.Body.TryGetProperty("detail", out var d) ? d.GetString() : null;
        AnsiConsole.MarkupLine($"[red]error {response.Status} {Markup.Escape(code ?? "")}[/]{(detail is null ? "" : ": " + Markup.Escape(detail))}");
        return 1;
    }
}

public sealed class UsageException(string message) : Exception(message);

/// <summary>Tiny <c>--name value</c> parser; unknown or malformed flags are usage errors.</summary>
public sealed class Options
{
    private readonly Dictionary<string, string> _values;

    private Options(Dictionary<string, string> values) => _values = values;

    public static Options Parse(string[] args)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
            {
                throw new UsageException($"expected --name value, got '{args[i]}'");
            }

            values[args[i][2..]] = args[++i];
        }

        return new Options(values);
    }

    public string Required(string name) =>
        _values.TryGetValue(name, out var value) ? value : throw new UsageException($"--{name} is required");

    public int Int(string name, int fallback) => (int)Long(name, fallback);

    public bool Bool(string name, bool fallback)
    {
        if (!_values.TryGetValue(name, out var text))
        {
            return fallback;
        }

        return bool.TryParse(text, out var value) ? value : throw new UsageException($"--{name} must be true or false, got '{text}'");
    }

    public long Long(string name, long fallback)
    {
        if (!_values.TryGetValue(name, out var text))
        {
            return fallback;
        }

        return long.TryParse(text, out var value) && value >= 0 && value <= int.MaxValue * 1000L
            ? value
            : throw new UsageException($"--{name} must be a non-negative whole number, got '{text}'");
    }
}
