using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Orleans.Storage;
using OrleansFlashSale.Client.Api;
using OrleansFlashSale.Grains;
using OrleansFlashSale.Client;

namespace OrleansFlashSale.Tests;

/// <summary>
/// Buyer JWTs and purchase tokens through real gateways (their own FlashSale:Auth settings) on the shared test
/// cluster: every refusal has its code and deducts nothing.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class SecurityTests(ClusterFixture fixture) : IAsyncLifetime
{
    private const string SigningKey = "test-buyer-signing-key-0123456789-abcdef";
    private const string PurchaseKey = "test-purchase-token-key-0123456789-abcdef";

    private readonly List<WebApplication> _gateways = [];

    /// <summary>The purchase token clock of the gateways started here; the silos keep the fixture's sale clock.</summary>
    private readonly FakeTimeProvider _tokenTime = new(DateTimeOffset.UtcNow);

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var gateway in _gateways)
        {
            await gateway.DisposeAsync();
        }
    }

    /// <param name="environment">The host environment; the tests' own configuration allows mode none in Production.</param>
    private async Task<HttpClient> StartGatewayAsync(string mode, string purchaseKey = PurchaseKey, string? environment = null, bool? allowNoneInProduction = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { EnvironmentName = environment });
        builder.Configuration.AddConfiguration(fixture.Configuration);
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["FlashSale:Auth:Mode"] = mode,
            ["FlashSale:Auth:SigningKey"] = SigningKey,
            ["FlashSale:Auth:PurchaseTokenKey"] = purchaseKey,
        });
        if (allowNoneInProduction is { } allow)
        {
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["FlashSale:Auth:AllowNoneInProduction"] = allow ? "true" : "false" });
        }

        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        builder.Services.AddSingleton<IGrainFactory>(fixture.Client);
        builder.Services.AddSingleton(new PurchaseTokenClock(_tokenTime));
        builder.Services.AddFlashSaleGateway(builder.Configuration);
        var app = builder.Build();
        app.MapFlashSaleApi();
        _gateways.Add(app);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new HttpClient { BaseAddress = new Uri(address) };
    }

    private static HttpRequestMessage Post(string path, string? body, string? bearer = null, string? purchaseToken = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path);
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }

        if (bearer is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        if (purchaseToken is not null)
        {
            request.Headers.Add(SecurityEndpoints.PurchaseTokenHeader, purchaseToken);
        }

        return request;
    }

    private static async Task<(HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response)> SendAsync(HttpClient http, HttpRequestMessage request)
    {
        var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone(), response);
    }

    private static async Task<HttpResponseMessage> AssertProblemAsync(HttpClient http, HttpRequestMessage request, HttpStatusCode status, string code)
    {
        var (actual, body, response) = await SendAsync(http, request);
        Assert.Equal(status, actual);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(code, body.GetProperty("code").GetString());
        return response;
    }

    private static async Task<string> CreateSaleAsync(HttpClient http, bool requirePurchaseToken, DateTimeOffset? startsAt = null)
    {
        var sku = ClusterFixture.NewSku("sec");
        var starts = startsAt is { } s ? $",\"startsAt\":\"{s:O}\"" : "";
        var request = Post("/api/sales",
            $$"""{"sku":"{{sku}}","stock":10,"buckets":2,"perUserLimit":2,"requirePurchaseToken":{{(requirePurchaseToken ? "true" : "false")}}{{starts}}}""",
            bearer: TestStack.AdminToken);
        var (status, body, _) = await SendAsync(http, request);
        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal(requirePurchaseToken, body.GetProperty("requirePurchaseToken").GetBoolean());
        return sku;
    }

    private async Task AssertNothingSoldAsync(string sku)
    {
        Assert.Equal(10, (await fixture.RedisStockAsync(sku, 2)).Sum());
        Assert.Equal(0, (await fixture.Client.Product(sku).GetStatusAsync(refresh: true))!.Sold);
    }

    private static string Mint(string user) => OrleansFlashSale.Cli.BuyerJwt.Mint(user, SigningKey, TimeSpan.FromMinutes(10));

    private static string Purchase(string requestId, string? userId = null) =>
        userId is null
            ? $$"""{"quantity":1,"requestId":"{{requestId}}"}"""
            : $$"""{"userId":"{{userId}}","quantity":1,"requestId":"{{requestId}}"}""";

    [Fact]
    public async Task In_production_mode_none_stops_the_gateway_at_start_naming_the_setting_that_allows_it()
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() =>
            StartGatewayAsync("none", environment: Environments.Production, allowNoneInProduction: false));
        Assert.Equal(
            "FlashSale:Auth:Mode is 'none' in the Production environment: the request body names the buyer, so anyone may buy as anyone. " +
            "Set FlashSale:Auth:Mode=jwt (with FlashSale:Auth:SigningKey), or FlashSale:Auth:AllowNoneInProduction=true when a front end " +
            "authenticates buyers before this gateway.",
            Assert.Single(error.Failures));

        // jwt mode needs no permission, and mode none starts where it is allowed, or outside Production.
        await StartGatewayAsync("jwt", environment: Environments.Production, allowNoneInProduction: false);
        await StartGatewayAsync("none", environment: Environments.Development, allowNoneInProduction: false);
        var http = await StartGatewayAsync("none", environment: Environments.Production, allowNoneInProduction: true);
        var sku = await CreateSaleAsync(http, requirePurchaseToken: false);
        var (status, order, _) = await SendAsync(http, Post($"/api/sales/{sku}/purchases", Purchase("r1", "alice")));
        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal("alice", order.GetProperty("userId").GetString());
    }

    [Fact]
    public async Task Jwt_mode_refuses_missing_invalid_expired_and_foreign_tokens_and_deducts_nothing()
    {
        var http = await StartGatewayAsync("jwt");
        var sku = await CreateSaleAsync(http, requirePurchaseToken: false);
        var path = $"/api/sales/{sku}/purchases";

        var missing = await AssertProblemAsync(http, Post(path, Purchase("r1", "alice")), HttpStatusCode.Unauthorized, "buyer_token_missing");
        Assert.StartsWith("Bearer", missing.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        await AssertProblemAsync(http, Post(path, Purchase("r2", "bob"), bearer: Mint("alice")), HttpStatusCode.Forbidden, "user_mismatch");
        var expired = OrleansFlashSale.Cli.BuyerJwt.Mint("alice", SigningKey, TimeSpan.FromMinutes(1), now: DateTimeOffset.UtcNow.AddHours(-1));
        await AssertProblemAsync(http, Post(path, Purchase("r3"), bearer: expired), HttpStatusCode.Unauthorized, "buyer_token_expired");
        var otherKey = OrleansFlashSale.Cli.BuyerJwt.Mint("alice", "another-signing-key-0123456789-abcdefgh", TimeSpan.FromMinutes(10));
        await AssertProblemAsync(http, Post(path, Purchase("r4"), bearer: otherKey), HttpStatusCode.Unauthorized, "buyer_token_invalid");
        var otherAudience = OrleansFlashSale.Cli.BuyerJwt.Mint("alice", SigningKey, TimeSpan.FromMinutes(10), audience: "someone-else");
        await AssertProblemAsync(http, Post(path, Purchase("r5"), bearer: otherAudience), HttpStatusCode.Unauthorized, "buyer_token_invalid");
        await AssertProblemAsync(http, Post(path, Purchase("r6"), bearer: "not-a-jwt"), HttpStatusCode.Unauthorized, "buyer_token_invalid");
        // The admin token is no buyer token.
        await AssertProblemAsync(http, Post(path, Purchase("r7", "alice"), bearer: TestStack.AdminToken), HttpStatusCode.Unauthorized, "buyer_token_invalid");

        await AssertNothingSoldAsync(sku);
    }

    /// <summary>The tools (demo, ./flashsale token) sign their own tokens, without the gateway's code.</summary>
    [Fact]
    public async Task A_token_signed_by_the_command_line_tools_buys_as_its_subject_on_a_jwt_gateway()
    {
        var http = await StartGatewayAsync("jwt");
        var sku = await CreateSaleAsync(http, requirePurchaseToken: false);
        var carol = OrleansFlashSale.Cli.BuyerJwt.Mint("carol", SigningKey, TimeSpan.FromMinutes(10));

        var (status, order, _) = await SendAsync(http, Post($"/api/sales/{sku}/purchases", Purchase("r1"), bearer: carol));
        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal("carol", order.GetProperty("userId").GetString());
        await AssertProblemAsync(http, Post($"/api/sales/{sku}/purchases", Purchase("r2", "dave"), bearer: carol), HttpStatusCode.Forbidden, "user_mismatch");
    }

    [Fact]
    public async Task Jwt_mode_buys_as_the_tokens_subject_and_shows_the_order_to_that_buyer_only()
    {
        var http = await StartGatewayAsync("jwt");
        var sku = await CreateSaleAsync(http, requirePurchaseToken: false);
        var alice = Mint("alice");

        var (status, order, _) = await SendAsync(http, Post($"/api/sales/{sku}/purchases", Purchase("r1"), bearer: alice));
        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal("alice", order.GetProperty("userId").GetString());
        // Naming oneself in the body is allowed.
        var (again, second, _) = await SendAsync(http, Post($"/api/sales/{sku}/purchases", Purchase("r2", "alice"), bearer: alice));
        Assert.Equal(HttpStatusCode.Created, again);
        Assert.Equal("alice", second.GetProperty("userId").GetString());

        var orderId = order.GetProperty("orderId").GetString()!;
        var stored = await fixture.Client.GetGrain<IOrdersGrain>(0).GetAsync(orderId);
        Assert.Equal("alice", stored!.UserId);

        var get = new HttpRequestMessage(HttpMethod.Get, $"/api/orders/{orderId}");
        get.Headers.Authorization = new AuthenticationHeaderValue("Bearer", alice);
        var (shown, view, _) = await SendAsync(http, get);
        Assert.Equal(HttpStatusCode.OK, shown);
        Assert.Equal("alice", view.GetProperty("userId").GetString());
        var foreign = new HttpRequestMessage(HttpMethod.Get, $"/api/orders/{orderId}");
        foreign.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Mint("bob"));
        await AssertProblemAsync(http, foreign, HttpStatusCode.Forbidden, "not_your_order");
        await AssertProblemAsync(http, new HttpRequestMessage(HttpMethod.Get, $"/api/orders/{orderId}"), HttpStatusCode.Unauthorized, "buyer_token_missing");

        await AssertProblemAsync(http, Post($"/api/orders/{orderId}/cancel", """{"userId":"bob"}""", bearer: alice), HttpStatusCode.Forbidden, "user_mismatch");
        await AssertProblemAsync(http, Post($"/api/orders/{orderId}/cancel", "{}"), HttpStatusCode.Unauthorized, "buyer_token_missing");
        await AssertProblemAsync(http, Post($"/api/orders/{orderId}/pay", "{}", bearer: Mint("bob")), HttpStatusCode.Forbidden, "not_your_order");

        Assert.Equal(8, (await fixture.RedisStockAsync(sku, 2)).Sum());
        Assert.Equal(2, (await fixture.Client.Product(sku).GetStatusAsync(refresh: true))!.Sold);
    }

    [Fact]
    public async Task Purchase_tokens_are_refused_before_the_start()
    {
        var http = await StartGatewayAsync("none");
        var sku = await CreateSaleAsync(http, requirePurchaseToken: true, startsAt: _tokenTime.GetUtcNow().AddDays(1));
        await AssertProblemAsync(http, Post($"/api/sales/{sku}/purchase-tokens", """{"userId":"alice"}"""), HttpStatusCode.Conflict, "not_started");
        await AssertProblemAsync(http, Post($"/api/sales/{sku}/purchases", Purchase("r1", "alice")), HttpStatusCode.Forbidden, "purchase_token_missing");
        await AssertProblemAsync(http, Post($"/api/sales/{ClusterFixture.NewSku("none")}/purchase-tokens", """{"userId":"alice"}"""), HttpStatusCode.NotFound, "unknown_sale");
        await AssertNothingSoldAsync(sku);
    }

    [Fact]
    public async Task Purchases_without_a_valid_token_for_this_user_and_sale_are_refused_and_deduct_nothing()
    {
        var http = await StartGatewayAsync("none");
        var sku = await CreateSaleAsync(http, requirePurchaseToken: true);
        var otherSku = await CreateSaleAsync(http, requirePurchaseToken: true);
        var path = $"/api/sales/{sku}/purchases";
        var aliceToken = await IssueAsync(http, sku, "alice");
        var otherSaleToken = await IssueAsync(http, otherSku, "alice");

        await AssertProblemAsync(http, Post(path, Purchase("r1", "alice")), HttpStatusCode.Forbidden, "purchase_token_missing");
        await AssertProblemAsync(http, Post(path, Purchase("r2", "bob"), purchaseToken: aliceToken), HttpStatusCode.Forbidden, "purchase_token_wrong_user");
        await AssertProblemAsync(http, Post(path, Purchase("r3", "alice"), purchaseToken: otherSaleToken), HttpStatusCode.Forbidden, "purchase_token_wrong_sale");
        var tampered = aliceToken[..^2] + (aliceToken[^2] == 'A' ? 'B' : 'A') + aliceToken[^1];
        await AssertProblemAsync(http, Post(path, Purchase("r4", "alice"), purchaseToken: tampered), HttpStatusCode.Forbidden, "purchase_token_invalid");
        await AssertProblemAsync(http, Post(path, Purchase("r5", "alice"), purchaseToken: "garbage"), HttpStatusCode.Forbidden, "purchase_token_invalid");

        _tokenTime.Advance(TimeSpan.FromSeconds(30));
        await AssertProblemAsync(http, Post(path, Purchase("r6", "alice"), purchaseToken: aliceToken), HttpStatusCode.Forbidden, "purchase_token_expired");
        await AssertNothingSoldAsync(sku);
        await AssertNothingSoldAsync(otherSku);

        var fresh = await IssueAsync(http, sku, "alice");
        var (status, order, _) = await SendAsync(http, Post(path, Purchase("r7", "alice"), purchaseToken: fresh));
        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal("alice", order.GetProperty("userId").GetString());
        // The token may also travel in the body.
        var (bodyStatus, _, _) = await SendAsync(http, Post(path,
            $$"""{"userId":"alice","quantity":1,"requestId":"r8","purchaseToken":"{{await IssueAsync(http, sku, "alice")}}"}"""));
        Assert.Equal(HttpStatusCode.Created, bodyStatus);
        Assert.Equal(8, (await fixture.RedisStockAsync(sku, 2)).Sum());
        Assert.Equal(2, (await fixture.Client.Product(sku).GetStatusAsync(refresh: true))!.Sold);
        await AssertNothingSoldAsync(otherSku);
    }

    [Fact]
    public async Task In_jwt_mode_the_purchase_token_is_issued_to_the_tokens_subject()
    {
        var http = await StartGatewayAsync("jwt");
        var sku = await CreateSaleAsync(http, requirePurchaseToken: true);
        await AssertProblemAsync(http, Post($"/api/sales/{sku}/purchase-tokens", null), HttpStatusCode.Unauthorized, "buyer_token_missing");
        await AssertProblemAsync(http, Post($"/api/sales/{sku}/purchase-tokens", """{"userId":"bob"}""", bearer: Mint("alice")),
            HttpStatusCode.Forbidden, "user_mismatch");

        var (issued, body, _) = await SendAsync(http, Post($"/api/sales/{sku}/purchase-tokens", null, bearer: Mint("alice")));
        Assert.Equal(HttpStatusCode.OK, issued);
        Assert.Equal("alice", body.GetProperty("userId").GetString());
        var token = body.GetProperty("token").GetString()!;

        await AssertProblemAsync(http, Post($"/api/sales/{sku}/purchases", Purchase("r1"), bearer: Mint("bob"), purchaseToken: token),
            HttpStatusCode.Forbidden, "purchase_token_wrong_user");
        await AssertNothingSoldAsync(sku);
        var (status, order, _) = await SendAsync(http, Post($"/api/sales/{sku}/purchases", Purchase("r2"), bearer: Mint("alice"), purchaseToken: token));
        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal("alice", order.GetProperty("userId").GetString());
    }

    [Fact]
    public async Task A_gateway_without_a_purchase_token_key_refuses_sales_that_need_one()
    {
        var http = await StartGatewayAsync("none", purchaseKey: "");
        var sku = ClusterFixture.NewSku("sec");
        var request = Post("/api/sales", $$"""{"sku":"{{sku}}","stock":10,"buckets":2,"perUserLimit":2,"requirePurchaseToken":true}""", bearer: TestStack.AdminToken);
        var (status, body, _) = await SendAsync(http, request);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_request", body.GetProperty("code").GetString());
        Assert.Contains("FlashSale:Auth:PurchaseTokenKey", body.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Null(await fixture.Client.Product(sku).GetDefinitionAsync());
        await AssertProblemAsync(http, Post($"/api/sales/{sku}/purchase-tokens", """{"userId":"alice"}"""),
            HttpStatusCode.ServiceUnavailable, "purchase_tokens_not_configured");
    }

    [Fact]
    public void Sale_state_stored_before_purchase_tokens_existed_reads_as_not_requiring_one()
    {
        // A product row as the silos' grain storage wrote it before RequirePurchaseToken (no such member).
        const string Stored = """
            {"$id":"1","$type":"OrleansFlashSale.Grains.ProductState, OrleansFlashSale.Grains","Sale":{"$id":"2",
            "$type":"OrleansFlashSale.SaleDefinition, OrleansFlashSale.Grains.Interfaces","Sku":"old-1","Stock":100,
            "Buckets":4,"PerUserLimit":2,"PaymentTimeoutSeconds":900,"QuotaShards":16,"Mode":"redis"},
            "BucketCount":4,"LayoutVersion":1,"HighestBucketCount":4}
            """;
        var serializer = fixture.Cluster.Silos[0].ServiceProvider.GetRequiredService<IGrainStorageSerializer>();
        var state = serializer.Deserialize<ProductState>(BinaryData.FromString(Stored));
        Assert.NotNull(state);
        Assert.Equal(new SaleDefinition("old-1", 100, 4, 2, null, null, 900, 16, SaleModes.Redis), state.Sale);
        Assert.False(state.Sale!.RequirePurchaseToken);
    }

    private static async Task<string> IssueAsync(HttpClient http, string sku, string user)
    {
        var (status, body, _) = await SendAsync(http, Post($"/api/sales/{sku}/purchase-tokens", $$"""{"userId":"{{user}}"}"""));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(sku, body.GetProperty("sku").GetString());
        return body.GetProperty("token").GetString()!;
    }
}
