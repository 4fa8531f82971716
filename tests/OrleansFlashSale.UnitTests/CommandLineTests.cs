using OrleansFlashSale.Bench;
using OrleansFlashSale.Cli;

namespace OrleansFlashSale.UnitTests;

/// <summary>The tools' argument handling: a clear message on stderr and exit 2 before anything is sent.</summary>
public sealed class CommandLineTests
{
    [Theory]
    [InlineData("sale", "sale needs a subcommand")]
    [InlineData("sale frobnicate", "unknown sale subcommand 'frobnicate'")]
    [InlineData("sale create --sku x", "--stock is required")]
    [InlineData("sale create --stock 5", "--sku is required")]
    [InlineData("sale create --sku x --stock 5 --stok 3", "unknown option '--stok'")]
    [InlineData("sale create --sku x --stock -5", "--stock must be a non-negative whole number, got '-5'")]
    [InlineData("sale create --sku x --stock 5 --buckets 99999999999", "--buckets must be at most 2147483647")]
    [InlineData("sale create --sku x --stock 5 --stock 6", "--stock is given twice")]
    [InlineData("sale create --sku", "--sku needs a value")]
    [InlineData("sale show", "sale show takes exactly one SKU (and optionally --json)")]
    [InlineData("sale rebucket x", "sale rebucket needs a SKU and a bucket count")]
    [InlineData("sale rebucket x 0", "'0' is not a bucket count")]
    [InlineData("sale close", "sale close needs exactly one SKU")]
    [InlineData("writer pace -1", "'-1' is not a pace (orders per second: 0 for full speed, up to 10,000,000)")]
    [InlineData("writer pace fast", "'fast' is not a pace")]
    [InlineData("writer 5", "writer takes no argument (show the pace) or 'pace N'")]
    [InlineData("sale close a b", "sale close needs exactly one SKU")]
    [InlineData("order", "order needs a subcommand: show")]
    [InlineData("order show a b", "order show takes exactly one order id (and optionally --json)")]
    [InlineData("verify --bogus", "unknown option '--bogus'")]
    [InlineData("bench nosuch", "unknown bench scenario 'nosuch'")]
    [InlineData("bench deduct --buckets 0", "--buckets takes one whole number from 1 to 256 (buckets and quota shards of the benchmark's sales); '0' is not one")]
    [InlineData("bench deduct --buckets 257", "--buckets takes one whole number from 1 to 256 (buckets and quota shards of the benchmark's sales); '257' is not one")]
    [InlineData("bench deduct --buckets", "--buckets takes one whole number from 1 to 256 (buckets and quota shards of the benchmark's sales)")]
    [InlineData("bench --buckets 2 deduct --buckets 3", "--buckets is given twice")]
    [InlineData("demo --users 0", "stock, buckets, limit, users, requests and concurrency must be at least 1")]
    [InlineData("demo users 5", "expected --name value, got 'users'")]
    public async Task A_usage_error_exits_2_with_the_reason_and_the_usage_on_stderr(string line, string message)
    {
        var (exit, output, error) = await RunAsync(line.Split(' '));
        Assert.Equal(2, exit);
        Assert.Contains("error: " + message, Flatten(error), StringComparison.Ordinal);
        Assert.Contains("usage:", error, StringComparison.Ordinal);
        Assert.Equal("", output);
    }

    /// <summary>
    /// The reason once, then the usage once: a subcommand's error shows that subcommand's line only, and no message
    /// repeats the syntax the usage shows.
    /// </summary>
    [Theory]
    [InlineData("sale create SKU --stock 5", "sale create takes the SKU as --sku SKU, not as a plain argument", "sale create --sku SKU --stock N")]
    [InlineData("sale create --sku x", "--stock is required", "sale create --sku SKU --stock N")]
    [InlineData("sale create --sku x --stock 5 extra", "expected --name value, got 'extra'", "sale create --sku SKU --stock N")]
    [InlineData("sale show", "sale show takes exactly one SKU", "sale show SKU")]
    [InlineData("sale rebucket x", "sale rebucket needs a SKU and a bucket count", "sale rebucket SKU N")]
    [InlineData("order show a b", "order show takes exactly one order id", "order show ORDER_ID")]
    [InlineData("token", "token needs a user id first", "token USER [--lifetime SECONDS]")]
    [InlineData("token --lifetime 5", "token needs a user id first", "token USER [--lifetime SECONDS]")]
    [InlineData("demo users 5", "expected --name value, got 'users'", "demo [--stock N]")]
    public async Task A_usage_error_prints_the_reason_and_the_usage_once_each(string line, string message, string syntax)
    {
        var (exit, output, error) = await RunAsync(line.Split(' '));
        var text = Words(error);
        Assert.Equal(2, exit);
        Assert.Equal("", output);
        Assert.Equal(1, Occurrences(text, "error:"));
        Assert.Equal(1, Occurrences(text, "usage:"));
        Assert.Equal(1, Occurrences(text, syntax));
        Assert.Equal(1, Occurrences(text, "./flashsale "));
        Assert.StartsWith("error: " + message, text, StringComparison.Ordinal);
        Assert.Contains("usage: ./flashsale " + syntax, text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("sale")]
    [InlineData("sale frobnicate")]
    public async Task A_tool_level_usage_error_lists_each_subcommand_once(string line)
    {
        var (exit, _, error) = await RunAsync(line.Split(' '));
        var text = Words(error);
        Assert.Equal(2, exit);
        Assert.Equal(1, Occurrences(text, "usage:"));
        foreach (var subcommand in new[] { "create --sku SKU", "show SKU", "rebucket SKU N", "close SKU" })
        {
            Assert.Equal(1, Occurrences(text, "./flashsale sale " + subcommand));
        }
    }

    /// <summary>
    /// Through the script: it prints its own usage for unknown commands and passes the tools their arguments. None of
    /// these reaches a gateway (the URL points at the discard port, where nothing listens).
    /// </summary>
    [Theory]
    [InlineData("bogus", "flashsale: error: unknown command 'bogus'", "usage: ./flashsale <command> [options]")]
    [InlineData("cluster extra", "error: cluster takes no arguments, got 'extra'", "./flashsale cluster")]
    [InlineData("sale create SKU --stock 5", "error: sale create takes the SKU as --sku SKU, not as a plain argument", "./flashsale sale create --sku SKU --stock N")]
    [InlineData("token", "error: token needs a user id first", "token USER [--lifetime SECONDS]")]
    public async Task The_script_prints_the_reason_and_the_usage_once_each(string line, string message, string usage)
    {
        var (exit, _, error) = await RunScriptAsync(line.Split(' '));
        var text = Words(error);
        Assert.Equal(2, exit);
        Assert.Equal(1, Occurrences(text, "error:"));
        Assert.Equal(1, Occurrences(text, "usage:"));
        Assert.Equal(1, Occurrences(text, usage));
        // The reason first, then the usage; no colour codes when stderr is not a terminal.
        Assert.StartsWith(message, text, StringComparison.Ordinal);
        Assert.DoesNotContain("\u001b[", error, StringComparison.Ordinal);
    }

    /// <summary>The script runs bench from the bench's program and demo from the CLI's; help starts nothing.</summary>
    [Theory]
    [InlineData("bench --help", "./flashsale bench [SCENARIO...] [--quick]")]
    [InlineData("bench deduct -h", "./flashsale bench [SCENARIO...] [--quick]")]
    [InlineData("demo --help", "./flashsale demo [--stock N]")]
    public async Task The_script_prints_the_help_of_bench_and_demo_and_exits_0(string line, string expected)
    {
        var (exit, output, error) = await RunScriptAsync(line.Split(' '));
        Assert.Equal(0, exit);
        Assert.StartsWith("usage: " + expected, Words(output), StringComparison.Ordinal);
        Assert.Equal("", error);
    }

    [Fact]
    public void Bench_buckets_sets_buckets_and_quota_shards_and_leaves_the_other_arguments()
    {
        var shape = BenchCommand.TakeBuckets(["deduct", "--buckets", "2", "--quick"], out var rest);
        Assert.Equal(new SaleShape(2, 2), shape);
        Assert.Equal(["deduct", "--quick"], rest);

        Assert.Null(BenchCommand.TakeBuckets(["deduct"], out rest));
        Assert.Equal(["deduct"], rest);
        Assert.Equal(new SaleShape(SaleRules.DefaultBuckets, SaleRules.DefaultBuckets), new BenchSettings(Quick: true).Shape);
    }

    /// <summary>The CLI has no bench (it references no grain): it names the program that does.</summary>
    [Theory]
    [InlineData("bench deduct", "error: bench is a program of its own (OrleansFlashSale.Bench); run it as ./flashsale bench")]
    [InlineData("", "error: a command is needed Run ./flashsale help for usage.")]
    public async Task The_cli_refuses_bench_and_no_command_with_exit_2(string line, string message)
    {
        var (exit, output, error) = await CaptureAsync(() => CommandLine.RunAsync(line.Length == 0 ? [] : line.Split(' ')));
        Assert.Equal(2, exit);
        Assert.StartsWith(message, Words(error), StringComparison.Ordinal);
        Assert.Equal("", output);
    }

    [Theory]
    [InlineData("sale --help", "sale rebucket SKU N")]
    [InlineData("sale -h", "sale close SKU")]
    [InlineData("sale create --help", "sale create --sku SKU --stock N")]
    [InlineData("order show -h", "order show ORDER_ID")]
    [InlineData("verify --help", "verify [SKU...] [--repair]")]
    [InlineData("bench --help", "bench [SCENARIO...] [--quick]")]
    [InlineData("token --help", "token USER [--lifetime SECONDS]")]
    [InlineData("demo --help", "demo [--stock N]")]
    [InlineData("help", "order show ORDER_ID")]
    public async Task Help_is_printed_and_exits_0_without_calling_the_gateway(string line, string expected)
    {
        var (exit, output, error) = await RunAsync(line.Split(' '));
        Assert.Equal(0, exit);
        Assert.Contains(expected, Flatten(output), StringComparison.Ordinal);
        Assert.Equal("", error);
    }

    [Fact]
    public async Task An_unreachable_gateway_is_an_error_with_exit_1()
    {
        var saved = Environment.GetEnvironmentVariable("FLASHSALE_GATEWAY_URL");
        // Port 9 (discard) on loopback: nothing listens there on these machines.
        Environment.SetEnvironmentVariable("FLASHSALE_GATEWAY_URL", "http://127.0.0.1:9");
        try
        {
            var (exit, output, error) = await RunAsync(["order", "show", "some-order"]);
            Assert.Equal(1, exit);
            Assert.Contains("the gateway cannot be reached", Flatten(error), StringComparison.Ordinal);
            Assert.Equal("", output);
        }
        finally
        {
            Environment.SetEnvironmentVariable("FLASHSALE_GATEWAY_URL", saved);
        }
    }

    [Fact]
    public async Task A_gateway_that_takes_the_request_but_never_answers_is_an_error_with_exit_1()
    {
        // Accepts the connection and reads nothing back: what a gateway stuck behind a dead store looks like.
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var accepted = listener.AcceptTcpClientAsync();
        var saved = (Environment.GetEnvironmentVariable("FLASHSALE_GATEWAY_URL"), Environment.GetEnvironmentVariable("FLASHSALE_GATEWAY_TIMEOUT"));
        Environment.SetEnvironmentVariable("FLASHSALE_GATEWAY_URL", $"http://127.0.0.1:{((System.Net.IPEndPoint)listener.LocalEndpoint).Port}");
        Environment.SetEnvironmentVariable("FLASHSALE_GATEWAY_TIMEOUT", "1");
        try
        {
            var (exit, output, error) = await RunAsync(["order", "show", "some-order"]);
            Assert.Equal(1, exit);
            Assert.Contains("the gateway did not answer in time (FLASHSALE_GATEWAY_TIMEOUT", Flatten(error), StringComparison.Ordinal);
            Assert.Equal("", output);
            Assert.True(accepted.IsCompleted);
        }
        finally
        {
            Environment.SetEnvironmentVariable("FLASHSALE_GATEWAY_URL", saved.Item1);
            Environment.SetEnvironmentVariable("FLASHSALE_GATEWAY_TIMEOUT", saved.Item2);
            (await accepted).Dispose();
        }
    }

    [Theory]
    [InlineData("0")]
    [InlineData("soon")]
    [InlineData("-5")]
    public async Task A_bad_gateway_timeout_is_a_usage_error_naming_it(string value)
    {
        var saved = Environment.GetEnvironmentVariable("FLASHSALE_GATEWAY_TIMEOUT");
        Environment.SetEnvironmentVariable("FLASHSALE_GATEWAY_TIMEOUT", value);
        try
        {
            var (exit, output, error) = await RunAsync(["order", "show", "some-order"]);
            Assert.Equal(2, exit);
            Assert.Contains($"FLASHSALE_GATEWAY_TIMEOUT must be a whole number of seconds from 1 to 3600, got '{value}'", Flatten(error), StringComparison.Ordinal);
            Assert.Equal("", output);
        }
        finally
        {
            Environment.SetEnvironmentVariable("FLASHSALE_GATEWAY_TIMEOUT", saved);
        }
    }

    /// <summary>Runs of white space (line ends, indentation) as one space.</summary>
    private static string Words(string text) => System.Text.RegularExpressions.Regex.Replace(text, @"\s+", " ");

    private static int Occurrences(string text, string part)
    {
        var count = 0;
        for (var at = text.IndexOf(part, StringComparison.Ordinal); at >= 0; at = text.IndexOf(part, at + part.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }

    /// <summary><c>bash ./flashsale ARGS</c> of this checkout, with the binaries this test run built.</summary>
    private static async Task<(int Exit, string Output, string Error)> RunScriptAsync(string[] args)
    {
        var start = new System.Diagnostics.ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(RepoRoot.Path, "flashsale"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

#if DEBUG
        start.Environment["FLASHSALE_BUILD_CONFIGURATION"] = "Debug";
#else
        start.Environment["FLASHSALE_BUILD_CONFIGURATION"] = "Release";
#endif
        start.Environment["FLASHSALE_GATEWAY_PORT"] = "9";
        // The binaries this run built, whatever the script's own build stamp says: a build here would both print
        // its progress into the output under test and replace the programs under the running tests.
        start.Environment["FLASHSALE_REBUILD"] = "0";
        using var process = System.Diagnostics.Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Spectre wraps long lines at the console width when output is not a terminal.</summary>
    private static string Flatten(string text) => text.Replace("\r", "", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal).Replace("  ", " ", StringComparison.Ordinal);

    /// <summary>Runs a tool as its program does: <c>bench</c> as the bench executable, the others as the CLI.</summary>
    private static Task<(int Exit, string Output, string Error)> RunAsync(string[] args) =>
        CaptureAsync(() => args[0] == "bench" ? CommandLine.RunAsync(args, BenchCommand.RunAsync) : CommandLine.RunAsync(args));

    private static async Task<(int Exit, string Output, string Error)> CaptureAsync(Func<Task<int>> run)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var savedOut = Console.Out;
        var savedError = Console.Error;
        var savedConsole = Spectre.Console.AnsiConsole.Console;
        Console.SetOut(output);
        Console.SetError(error);
        Spectre.Console.AnsiConsole.Console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings
        {
            Out = new Spectre.Console.AnsiConsoleOutput(output),
        });
        try
        {
            var exit = await run();
            return (exit, output.ToString(), error.ToString());
        }
        finally
        {
            Console.SetOut(savedOut);
            Console.SetError(savedError);
            Spectre.Console.AnsiConsole.Console = savedConsole;
        }
    }
}
