using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace OrleansFlashSale.Tests;

/// <summary>
/// The live dashboard: its JSON endpoint, and the page itself in a real headless Chromium against the test
/// cluster's gateway (a real loopback port), before and after purchases. Leaves a screenshot under TestResults/.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed partial class DashboardTests(ClusterFixture fixture)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private HttpClient Http => fixture.Http;

    [Fact]
    public async Task The_dashboard_endpoint_needs_the_admin_token_and_a_known_sale()
    {
        Assert.Equal(HttpStatusCode.Unauthorized, (await Http.SendAsync(Admin(HttpMethod.Get, "/api/admin/dashboard", token: null))).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await Http.SendAsync(Admin(HttpMethod.Get, "/api/admin/dashboard", token: "wrong-token"))).StatusCode);
        await AssertCodeAsync(Admin(HttpMethod.Get, "/api/admin/dashboard?sku=bad%20sku"), HttpStatusCode.BadRequest, "invalid_request");
        await AssertCodeAsync(Admin(HttpMethod.Get, $"/api/admin/dashboard?sku={ClusterFixture.NewSku("none")}"), HttpStatusCode.NotFound, "unknown_sale");
    }

    [Fact]
    public async Task The_page_and_its_files_come_from_the_gateway_alone()
    {
        foreach (var (path, type) in new[] { ("/dashboard", "text/html"), ("/dashboard/dashboard.js", "text/javascript"), ("/dashboard/dashboard.css", "text/css") })
        {
            var response = await Http.GetAsync(path);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(type, response.Content.Headers.ContentType?.MediaType);
            Assert.StartsWith("default-src 'self'", response.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
            var text = await response.Content.ReadAsStringAsync();
            Assert.DoesNotMatch(HttpUrl(), text);
        }

        var missing = await Http.GetAsync("/dashboard/secrets.json");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task The_orleans_dashboard_path_says_it_is_off_and_how_to_turn_it_on()
    {
        // The fixture's gateway maps the dashboard as a production gateway does with the default settings.
        foreach (var path in new[] { "/orleans-dashboard/", "/orleans-dashboard/index.html" })
        {
            var response = await Http.GetAsync(path);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            var body = await response.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal("orleans_dashboard_off", body.GetProperty("code").GetString());
            var detail = body.GetProperty("detail").GetString();
            Assert.Contains("FlashSale:Gateway:OrleansDashboard", detail, StringComparison.Ordinal);
            Assert.Contains("FlashSale:Silo:OrleansDashboard", detail, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task The_endpoint_counts_answers_by_outcome_and_shows_the_books_once_persisted()
    {
        var sku = await CreateSaleAsync(stock: 3, buckets: 2, limit: 2);
        Assert.Equal(HttpStatusCode.Created, await BuyAsync(sku, "alice", "a-1", 2));
        Assert.Equal(HttpStatusCode.OK, await BuyAsync(sku, "alice", "a-1", 2));          // replay
        Assert.Equal(HttpStatusCode.Conflict, await BuyAsync(sku, "alice", "a-2", 1));    // limit
        Assert.Equal(HttpStatusCode.Created, await BuyAsync(sku, "bob", "b-1", 1));
        Assert.Equal(HttpStatusCode.Conflict, await BuyAsync(sku, "carol", "c-1", 1));    // sold out
        Assert.Equal(HttpStatusCode.BadRequest, await BuyAsync(sku, "carol", "c-2", 3));  // over the limit

        // Counts cover complete seconds and the books are refreshed every few seconds: wait for both to settle.
        var view = await WaitForAsync(sku, v =>
            Total(v, "created") == 2 && Total(v, "invalid_request") == 1
            && v.GetProperty("books").TryGetProperty("persistedUnits", out var persisted) && persisted.GetInt64() == 3
            && v.GetProperty("books").GetProperty("atRest").GetBoolean());
        Assert.Equal(2, Total(view, "created"));
        Assert.Equal(1, Total(view, "replayed"));
        Assert.Equal(1, Total(view, "limit_exceeded"));
        Assert.Equal(1, Total(view, "sold_out"));
        Assert.Equal(1, Total(view, "invalid_request"));
        Assert.Equal(0, Total(view, "unavailable"));

        var sale = view.GetProperty("sale");
        Assert.Equal(3, sale.GetProperty("sold").GetInt64());
        Assert.Equal(0, sale.GetProperty("remaining").GetInt64());
        Assert.Equal([0L, 0L], sale.GetProperty("buckets").EnumerateArray().Select(b => b.GetProperty("remaining").GetInt64()).ToArray());

        var books = view.GetProperty("books");
        Assert.Equal(3, books.GetProperty("acknowledgedUnits").GetInt64());
        Assert.Equal(0, books.GetProperty("inFlightUnits").GetInt64());
        Assert.Equal(0, books.GetProperty("deadLetters").GetInt64());
        Assert.Equal(0, books.GetProperty("checkMax").GetInt64());
        Assert.False(books.GetProperty("drift").GetBoolean());
        var pending = books.GetProperty("ordersByStatus").EnumerateArray().Single(s => s.GetProperty("status").GetString() == "pending_payment");
        Assert.Equal(2, pending.GetProperty("orders").GetInt64());
        Assert.Equal(3, pending.GetProperty("units").GetInt64());
        Assert.Contains(view.GetProperty("sales").EnumerateArray(), s => s.GetString() == sku);
        Assert.Equal(2, view.GetProperty("silos").EnumerateArray().Count(s => s.GetProperty("status").GetString() == "Active"));
    }

    [Fact]
    public async Task A_headless_browser_shows_the_sale_and_its_numbers_change_after_purchases()
    {
        var browser = FindChromium();
        var sku = await CreateSaleAsync(stock: 10, buckets: 2, limit: 2);

        var before = await DumpDomAsync(browser, sku);
        Assert.Equal(sku, Text(before, "sale-sku"));
        Assert.Equal("live", Text(before, "connection"));
        Assert.Equal("10", Text(before, "stock"));
        Assert.Equal("0", Text(before, "sold"));
        Assert.Equal("10", Text(before, "remaining"));
        Assert.Equal(["5", "5"], BucketValues(before));

        Assert.Equal(HttpStatusCode.Created, await BuyAsync(sku, "u1", "r1", 2));
        Assert.Equal(HttpStatusCode.Created, await BuyAsync(sku, "u2", "r2", 1));
        Assert.Equal(HttpStatusCode.Conflict, await BuyAsync(sku, "u1", "r3", 1));
        // The page reads what the endpoint serves; wait until the answers' second is complete and counted.
        await WaitForAsync(sku, v => Total(v, "created") == 2 && Total(v, "limit_exceeded") == 1);

        var after = await DumpDomAsync(browser, sku);
        Assert.Equal("3", Text(after, "sold"));
        Assert.Equal("7", Text(after, "remaining"));
        Assert.Equal(10 - 3, BucketValues(after).Sum(long.Parse));
        Assert.Equal(("2", "2"), RateRow(after, "created"));
        Assert.Equal(("1", "1"), RateRow(after, "limit_exceeded"));
        Assert.Contains("Active", after, StringComparison.Ordinal);

        var screenshot = Path.Combine(RepositoryRoot(), "TestResults", "dashboard.png");
        Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
        File.Delete(screenshot);
        await RunChromiumAsync(browser, sku, $"--window-size=1280,1700 --hide-scrollbars --screenshot={screenshot}");
        var png = await File.ReadAllBytesAsync(screenshot);
        Assert.True(png.Length > 10_000, $"the screenshot {screenshot} has only {png.Length} bytes");
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
    }

    private static long Total(JsonElement view, string outcome) =>
        view.GetProperty("rates").GetProperty("total").GetProperty(outcome).GetInt64();

    private async Task<JsonElement> WaitForAsync(string sku, Func<JsonElement, bool> condition)
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (true)
        {
            var response = await Http.SendAsync(Admin(HttpMethod.Get, $"/api/admin/dashboard?sku={sku}"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var view = await response.Content.ReadFromJsonAsync<JsonElement>();
            if (condition(view))
            {
                return view;
            }

            Assert.True(DateTime.UtcNow < deadline, "the dashboard never showed the expected numbers; last answer: " + view);
            await Task.Delay(250);
        }
    }

    private async Task<string> CreateSaleAsync(long stock, int buckets, int limit)
    {
        var sku = ClusterFixture.NewSku("dash");
        var request = Admin(HttpMethod.Post, "/api/sales");
        request.Content = new StringContent($$"""{"sku":"{{sku}}","stock":{{stock}},"buckets":{{buckets}},"perUserLimit":{{limit}}}""", Encoding.UTF8, "application/json");
        Assert.Equal(HttpStatusCode.Created, (await Http.SendAsync(request)).StatusCode);
        return sku;
    }

    private async Task<HttpStatusCode> BuyAsync(string sku, string user, string requestId, int quantity)
    {
        var content = new StringContent($$"""{"userId":"{{user}}","quantity":{{quantity}},"requestId":"{{requestId}}"}""", Encoding.UTF8, "application/json");
        return (await Http.PostAsync($"/api/sales/{sku}/purchases", content)).StatusCode;
    }

    private static HttpRequestMessage Admin(HttpMethod method, string path, string? token = TestStack.AdminToken)
    {
        var request = new HttpRequestMessage(method, path);
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return request;
    }

    private async Task AssertCodeAsync(HttpRequestMessage request, HttpStatusCode status, string code)
    {
        var response = await Http.SendAsync(request);
        Assert.Equal(status, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(code, body.GetProperty("code").GetString());
    }

    /// <summary>The page as Chromium rendered it after a few polls (virtual time: no real waiting).</summary>
    private Task<string> DumpDomAsync(string browser, string sku) => RunChromiumAsync(browser, sku, "--dump-dom");

    private async Task<string> RunChromiumAsync(string browser, string sku, string action)
    {
        var profile = Directory.CreateTempSubdirectory("flashsale-chromium-");
        try
        {
            // The token travels in the fragment, which the page takes and removes; it never reaches the server's logs.
            var url = $"{Http.BaseAddress}dashboard?sku={sku}#token={TestStack.AdminToken}";
            var start = new ProcessStartInfo(browser)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var argument in $"--headless --no-sandbox --disable-gpu --no-first-run --disable-extensions --user-data-dir={profile.FullName} --virtual-time-budget=5000 {action}".Split(' '))
            {
                start.ArgumentList.Add(argument);
            }

            start.ArgumentList.Add(url);
            using var process = Process.Start(start) ?? throw new InvalidOperationException($"{browser} did not start");
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(Deadline);
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                Assert.Fail($"{browser} did not finish within {Deadline.TotalSeconds} s: {await stderr}");
            }

            Assert.True(process.ExitCode == 0, $"{browser} exited with {process.ExitCode}: {await stderr}");
            return await stdout;
        }
        finally
        {
            profile.Delete(recursive: true);
        }
    }

    /// <summary>Chromium from FLASHSALE_CHROMIUM or the PATH; never skipped: a missing browser fails the test.</summary>
    private static string FindChromium()
    {
        if (Environment.GetEnvironmentVariable("FLASHSALE_CHROMIUM") is { Length: > 0 } configured)
        {
            Assert.True(File.Exists(configured), $"FLASHSALE_CHROMIUM={configured} does not exist");
            return configured;
        }

        var path = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);
        foreach (var name in new[] { "chromium", "chromium-browser", "google-chrome" })
        {
            if (path.Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists) is { } found)
            {
                return found;
            }
        }

        Assert.Fail("Chromium is required by the dashboard browser test and was not found on PATH. " +
                    "Install it with `deploy/local/stack.sh install` (Debian package chromium), or set FLASHSALE_CHROMIUM.");
        return "";
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "OrleansFlashSale.sln")))
            {
                return dir.FullName;
            }
        }

        return Environment.CurrentDirectory;
    }

    private static string Text(string dom, string id)
    {
        var match = Regex.Match(dom, $"id=\"{Regex.Escape(id)}\"[^>]*>([^<]*)<");
        Assert.True(match.Success, $"the page has no element #{id}; page: {dom}");
        return WebUtility.HtmlDecode(match.Groups[1].Value);
    }

    private static string[] BucketValues(string dom) =>
        [.. Regex.Matches(dom, "<div class=\"bar\" data-bucket=\"\\d+\">.*?<span class=\"value\">(\\d+)</span>").Select(m => m.Groups[1].Value)];

    private static (string LastMinute, string Total) RateRow(string dom, string outcome)
    {
        var match = Regex.Match(dom, $"data-outcome=\"{Regex.Escape(outcome)}\">.*?</span></td><td>(\\d+)</td><td>(\\d+)</td>");
        Assert.True(match.Success, $"the answers table has no {outcome} row; page: {dom}");
        return (match.Groups[1].Value, match.Groups[2].Value);
    }

    [GeneratedRegex("https?://", RegexOptions.IgnoreCase)]
    private static partial Regex HttpUrl();
}
