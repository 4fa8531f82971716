using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using OrleansFlashSale.Client.Api;
using OrleansFlashSale.Client.Api.Admission;
using OrleansFlashSale.Client;

namespace OrleansFlashSale.Tests.Overload;

/// <summary>
/// Admission control on its own (the real limiters, with a request handler the test holds open) and through a real
/// gateway on the test cluster: what is refused is refused with 429, a code and Retry-After, and deducts nothing.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class AdmissionTests(ClusterFixture fixture)
{
    private ServiceProvider Services(Dictionary<string, string?> settings)
    {
        settings["FlashSale:Gateway:AdminToken"] = TestStack.AdminToken;
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddMetrics();
        // The gateway's sold-out cache (which admission asks) reads buyers through the cluster.
        services.AddSingleton<IGrainFactory>(fixture.Client);
        services.AddFlashSaleGateway(configuration);
        services.AddFlashSaleAdmission(configuration);
        return services.BuildServiceProvider();
    }

    private static DefaultHttpContext Context(IServiceProvider services) => new()
    {
        RequestServices = services,
        Request = { Method = "POST" },
        Response = { Body = new MemoryStream() },
    };

    private static RequestDelegate Answer(int status) => context =>
    {
        context.Response.StatusCode = status;
        return Task.CompletedTask;
    };

    private static (string Code, string Detail) ProblemOf(HttpContext context)
    {
        var body = JsonDocument.Parse(((MemoryStream)context.Response.Body).ToArray()).RootElement;
        return (body.GetProperty("code").GetString()!, body.GetProperty("detail").GetString()!);
    }

    [Fact]
    public async Task Beyond_the_slots_and_the_queue_a_purchase_is_refused_at_once_and_queued_ones_run_in_order()
    {
        await using var services = Services(new()
        {
            ["FlashSale:Gateway:Admission:MaxConcurrentPurchases"] = "1",
            ["FlashSale:Gateway:Admission:QueueLimit"] = "1",
            ["FlashSale:Gateway:Admission:QueueTimeout"] = "00:01:00",
            ["FlashSale:Gateway:Admission:RetryAfterSeconds"] = "3",
        });
        var admission = services.GetRequiredService<AdmissionControl>();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = Context(services);
        var running = admission.RunAsync(first, "sku", async c =>
        {
            await release.Task;
            c.Response.StatusCode = 201;
        });
        var second = Context(services);
        var queued = admission.RunAsync(second, "sku", Answer(201));
        Assert.False(queued.IsCompleted);

        var third = Context(services);
        await admission.RunAsync(third, "sku", Answer(201)).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(429, third.Response.StatusCode);
        Assert.Equal("3", third.Response.Headers.RetryAfter.ToString());
        Assert.Equal("application/problem+json", third.Response.ContentType);
        var (code, detail) = ProblemOf(third);
        Assert.Equal(ErrorCodes.Overloaded, code);
        Assert.Contains("at capacity", detail);

        Assert.False(queued.IsCompleted);
        release.SetResult();
        await Task.WhenAll(running, queued).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(201, first.Response.StatusCode);
        Assert.Equal(201, second.Response.StatusCode);
    }

    [Fact]
    public async Task A_queued_purchase_is_refused_when_its_queue_deadline_passes()
    {
        await using var services = Services(new()
        {
            ["FlashSale:Gateway:Admission:MaxConcurrentPurchases"] = "1",
            ["FlashSale:Gateway:Admission:QueueLimit"] = "4",
            ["FlashSale:Gateway:Admission:QueueTimeout"] = "00:00:00.200",
        });
        var admission = services.GetRequiredService<AdmissionControl>();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var running = admission.RunAsync(Context(services), "sku", _ => release.Task);
        var waiting = Context(services);
        var reached = false;
        await admission.RunAsync(waiting, "sku", c =>
        {
            reached = true;
            return Answer(201)(c);
        }).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.False(reached);
        Assert.Equal(429, waiting.Response.StatusCode);
        Assert.Equal("1", waiting.Response.Headers.RetryAfter.ToString());
        var (code, detail) = ProblemOf(waiting);
        Assert.Equal(ErrorCodes.Overloaded, code);
        Assert.Contains("queue deadline", detail);
        release.SetResult();
        await running.WaitAsync(TimeSpan.FromSeconds(30));
    }

    private static HttpRequestMessage Purchase(string sku, string user, string requestId) => new(HttpMethod.Post, $"/api/sales/{sku}/purchases")
    {
        Content = new StringContent($$"""{"userId":"{{user}}","quantity":1,"requestId":"{{requestId}}"}""", Encoding.UTF8, "application/json"),
    };

    private static async Task<(HttpStatusCode Status, string? Code, RetryConditionHeaderValue? RetryAfter)> SendAsync(HttpClient http, HttpRequestMessage request)
    {
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        var code = response.Content.Headers.ContentType?.MediaType == "application/problem+json"
            ? JsonDocument.Parse(text).RootElement.GetProperty("code").GetString()
            : null;
        return (response.StatusCode, code, response.Headers.RetryAfter);
    }

    [Fact]
    public async Task Refusals_the_sold_out_cache_answers_spend_no_buyer_allowance()
    {
        await using var gateway = await TestGateway.StartAsync(fixture, new()
        {
            // Two purchases a day per buyer and sale: nothing refills while the test runs.
            ["FlashSale:Gateway:RateLimits:PerUser:TokenLimit"] = "2",
            ["FlashSale:Gateway:RateLimits:PerUser:TokensPerPeriod"] = "1",
            ["FlashSale:Gateway:RateLimits:PerUser:ReplenishmentPeriod"] = "1.00:00:00",
            ["FlashSale:Gateway:RateLimits:PerIp:TokenLimit"] = "0",
        });
        using var http = gateway.CreateClient(TimeSpan.FromSeconds(60));
        var sale = await fixture.CreateSaleAsync("adm-soldout", stock: 1, buckets: 1, perUserLimit: 1);
        Assert.Equal(HttpStatusCode.Created, (await SendAsync(http, Purchase(sale.Sku, "winner", "w0"))).Status);

        // The cluster's sold-out answer (one allowance spent) teaches the gateway's cache.
        Assert.Equal((HttpStatusCode.Conflict, ErrorCodes.SoldOut), Head(await SendAsync(http, Purchase(sale.Sku, "loser", "l0"))));
        var cache = gateway.Services.GetRequiredService<SoldOutCache>();
        await TestDb.WaitUntilAsync(() => Task.FromResult(cache.WillAnswerSoldOut(sale.Sku, "loser")), TimeSpan.FromSeconds(30));

        // From then on the same buyer is refused from memory as often as they ask: 409, never 429.
        for (var i = 1; i <= 5; i++)
        {
            Assert.Equal((HttpStatusCode.Conflict, ErrorCodes.SoldOut), Head(await SendAsync(http, Purchase(sale.Sku, "loser", $"l{i}"))));
        }

        // The buyer holding the unit still goes through admission to the cluster, and gets the order back.
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(http, Purchase(sale.Sku, "winner", "w0"))).Status);
        Assert.Equal(0, (await fixture.RedisStockAsync(sale.Sku, 1)).Sum());

        static (HttpStatusCode, string?) Head((HttpStatusCode Status, string? Code, RetryConditionHeaderValue? RetryAfter) answer) =>
            (answer.Status, answer.Code);
    }

    [Fact]
    public async Task A_buyer_over_the_rate_gets_429_with_Retry_After_and_other_buyers_are_not_affected()
    {
        await using var gateway = await TestGateway.StartAsync(fixture, new()
        {
            // One token a day after the first three: nothing refills while the test runs, however slow the machine.
            ["FlashSale:Gateway:RateLimits:PerUser:TokenLimit"] = "3",
            ["FlashSale:Gateway:RateLimits:PerUser:TokensPerPeriod"] = "1",
            ["FlashSale:Gateway:RateLimits:PerUser:ReplenishmentPeriod"] = "1.00:00:00",
            ["FlashSale:Gateway:RateLimits:PerIp:TokenLimit"] = "0",
        });
        using var http = gateway.CreateClient(TimeSpan.FromSeconds(60));
        var sale = await fixture.CreateSaleAsync("adm-user", stock: 100, buckets: 2, perUserLimit: 10);

        var answers = new List<(HttpStatusCode Status, string? Code, RetryConditionHeaderValue? RetryAfter)>();
        for (var i = 0; i < 5; i++)
        {
            answers.Add(await SendAsync(http, Purchase(sale.Sku, "alice", $"a{i}")));
        }

        Assert.Equal([HttpStatusCode.Created, HttpStatusCode.Created, HttpStatusCode.Created, HttpStatusCode.TooManyRequests, HttpStatusCode.TooManyRequests],
            answers.Select(a => a.Status).ToArray());
        Assert.All(answers.Skip(3), a =>
        {
            Assert.Equal(ErrorCodes.RateLimited, a.Code);
            Assert.True(a.RetryAfter?.Delta is { TotalSeconds: >= 1 }, $"Retry-After was {a.RetryAfter}");
        });
        Assert.Equal(HttpStatusCode.Created, (await SendAsync(http, Purchase(sale.Sku, "bob", "b0"))).Status);
        Assert.Equal(100 - 4, (await fixture.RedisStockAsync(sale.Sku, 2)).Sum());
    }

    [Fact]
    public async Task An_address_over_the_rate_gets_429_for_purchases_but_can_still_read_the_sale()
    {
        await using var gateway = await TestGateway.StartAsync(fixture, new()
        {
            ["FlashSale:Gateway:RateLimits:PerIp:TokenLimit"] = "4",
            ["FlashSale:Gateway:RateLimits:PerIp:TokensPerPeriod"] = "1",
            ["FlashSale:Gateway:RateLimits:PerIp:ReplenishmentPeriod"] = "1.00:00:00",
            ["FlashSale:Gateway:RateLimits:PerUser:TokenLimit"] = "0",
        });
        using var http = gateway.CreateClient(TimeSpan.FromSeconds(60));
        var sale = await fixture.CreateSaleAsync("adm-ip", stock: 100, buckets: 2, perUserLimit: 10);
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(HttpStatusCode.Created, (await SendAsync(http, Purchase(sale.Sku, $"u{i}", "r"))).Status);
        }

        var refused = await SendAsync(http, Purchase(sale.Sku, "u9", "r"));
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.Status);
        Assert.Equal(ErrorCodes.RateLimited, refused.Code);
        Assert.NotNull(refused.RetryAfter);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(http, new HttpRequestMessage(HttpMethod.Get, $"/api/sales/{sale.Sku}"))).Status);
        Assert.Equal(100 - 4, (await fixture.RedisStockAsync(sale.Sku, 2)).Sum());
    }

    [Theory]
    [InlineData("""{"userId":"alice","quantity":1}""", "alice")]
    [InlineData("""{"quantity":1,"UserId":"alice"}""", "alice")]
    [InlineData("""{"userId":"a","userId":"b"}""", null)]
    [InlineData("""{"userId":5}""", null)]
    [InlineData("""{"nested":{"userId":"x"},"quantity":1}""", null)]
    [InlineData("""{"userId":"alice",""", null)]
    [InlineData("""["userId","alice"]""", null)]
    [InlineData("", null)]
    public void The_buyer_is_read_from_the_body_as_the_endpoint_binds_it_or_not_at_all(string body, string? expected) =>
        Assert.Equal(expected, AdmissionControl.UserIdOf(Encoding.UTF8.GetBytes(body)));

    [Theory]
    [InlineData("/api/sales/abc/purchases", "abc")]
    [InlineData("/api/sales/abc/purchases/", "abc")]
    [InlineData("/API/Sales/abc/Purchases", "abc")]
    [InlineData("/api/sales/abc", null)]
    [InlineData("/api/sales//purchases", null)]
    [InlineData("/api/sales/abc/buckets", null)]
    [InlineData("/api/sales/a/b/purchases", null)]
    [InlineData("/api/salesx/abc/purchases", null)]
    [InlineData("/api/orders/abc/pay", null)]
    public void Only_the_purchase_path_is_guarded(string path, string? sku) =>
        Assert.Equal(sku, AdmissionExtensions.PurchaseSku(new PathString(path)));

    [Theory]
    [InlineData("FlashSale:Gateway:Admission:MaxConcurrentPurchases", "0", "FlashSale:Gateway:Admission:MaxConcurrentPurchases must be between 1 and 100000")]
    [InlineData("FlashSale:Gateway:Admission:QueueLimit", "-1", "FlashSale:Gateway:Admission:QueueLimit must be between 0 and 1000000")]
    [InlineData("FlashSale:Gateway:Admission:QueueTimeout", "00:00:00", "FlashSale:Gateway:Admission:QueueTimeout must be between")]
    [InlineData("FlashSale:Gateway:RateLimits:PerUser:TokensPerPeriod", "50", "FlashSale:Gateway:RateLimits:PerUser:TokensPerPeriod must be between 1 and TokenLimit (20)")]
    [InlineData("FlashSale:Gateway:RateLimits:PerIp:ReplenishmentPeriod", "00:00:00", "FlashSale:Gateway:RateLimits:PerIp:ReplenishmentPeriod must be between")]
    public async Task A_bad_admission_setting_stops_the_host_with_its_name(string key, string value, string message)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { [key] = value });
        builder.Services.AddFlashSaleAdmission(builder.Configuration);
        using var host = builder.Build();
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void The_defaults_are_valid()
    {
        Assert.True(new AdmissionOptionsValidator().Validate(null, new AdmissionOptions()).Succeeded);
        Assert.True(new RateLimitOptionsValidator().Validate(null, new RateLimitOptions()).Succeeded);
    }
}
