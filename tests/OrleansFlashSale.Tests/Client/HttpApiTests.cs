using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace OrleansFlashSale.Tests;

/// <summary>The HTTP API through the gateway's real endpoints, against the test cluster.</summary>
[Collection(ClusterCollection.Name)]
public sealed class HttpApiTests(ClusterFixture fixture)
{
    private HttpClient Http => fixture.Http;

    private static HttpRequestMessage Json(HttpMethod method, string path, string body, string? token = TestStack.AdminToken,
        string contentType = "application/json")
    {
        var request = new HttpRequestMessage(method, path) { Content = new StringContent(body, Encoding.UTF8) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return request;
    }

    private async Task<(HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response)> SendAsync(HttpRequestMessage request)
    {
        var response = await Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone(), response);
    }

    private async Task AssertProblemAsync(HttpRequestMessage request, HttpStatusCode status, string code)
    {
        var (actual, body, response) = await SendAsync(request);
        Assert.Equal(status, actual);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(code, body.GetProperty("code").GetString());
    }

    private async Task<string> CreateSaleAsync(long stock = 10, int buckets = 2, int limit = 2)
    {
        var sku = ClusterFixture.NewSku("http");
        var (status, body, _) = await SendAsync(Json(HttpMethod.Post, "/api/sales",
            $$"""{"sku":"{{sku}}","stock":{{stock}},"buckets":{{buckets}},"perUserLimit":{{limit}}}"""));
        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal(sku, body.GetProperty("sku").GetString());
        return sku;
    }

    [Fact]
    public async Task Admin_endpoints_need_the_admin_token()
    {
        var body = """{"sku":"x1","stock":1,"buckets":1,"perUserLimit":1}""";
        await AssertProblemAsync(Json(HttpMethod.Post, "/api/sales", body, token: null), HttpStatusCode.Unauthorized, "unauthorized");
        await AssertProblemAsync(Json(HttpMethod.Post, "/api/sales", body, token: "wrong-token"), HttpStatusCode.Forbidden, "forbidden");
        await AssertProblemAsync(Json(HttpMethod.Put, "/api/sales/x1/buckets", """{"buckets":2}""", token: null), HttpStatusCode.Unauthorized, "unauthorized");
        Assert.Null(await fixture.Client.Product("x1").GetDefinitionAsync());
    }

    [Fact]
    public async Task Creating_a_sale_twice_is_a_conflict_and_the_status_shows_every_bucket()
    {
        var sku = await CreateSaleAsync(stock: 11, buckets: 3);
        await AssertProblemAsync(Json(HttpMethod.Post, "/api/sales", $$"""{"sku":"{{sku}}","stock":5,"buckets":1,"perUserLimit":1}"""),
            HttpStatusCode.Conflict, "sale_exists");

        var status = await Http.GetFromJsonAsync<JsonElement>($"/api/sales/{sku}");
        Assert.Equal(11, status.GetProperty("stock").GetInt64());
        Assert.Equal(11, status.GetProperty("remaining").GetInt64());
        Assert.Equal(0, status.GetProperty("sold").GetInt64());
        Assert.Equal("active", status.GetProperty("state").GetString());
        // 11 over 3 buckets: the fragments go one each to the first buckets.
        Assert.Equal([4L, 4L, 3L], status.GetProperty("buckets").EnumerateArray().Select(b => b.GetProperty("remaining").GetInt64()).ToArray());
    }

    [Theory]
    [InlineData("""{"sku":"bad sku","stock":1,"buckets":1,"perUserLimit":1}""")]
    [InlineData("""{"sku":"x","stock":0,"buckets":1,"perUserLimit":1}""")]
    [InlineData("""{"sku":"x","stock":1000000001,"buckets":1,"perUserLimit":1}""")]
    [InlineData("""{"sku":"x","stock":5,"buckets":6,"perUserLimit":1}""")]
    [InlineData("""{"sku":"x","stock":5000,"buckets":1025,"perUserLimit":1}""")]
    [InlineData("""{"sku":"x","stock":5,"buckets":1,"perUserLimit":0}""")]
    [InlineData("""{"sku":"x","stock":99999999999999999999999,"buckets":1,"perUserLimit":1}""")]
    [InlineData("""{"sku":"x","stock":"5","buckets":1,"perUserLimit":1}""")]
    [InlineData("""{"sku":"x","stock":5,"buckets":1}""")]
    [InlineData("""{"sku":"x","sku":"y","stock":5,"buckets":1,"perUserLimit":1}""")]
    [InlineData("""{"sku":"x","stock":5,"buckets":1,"perUserLimit":1,"extra":true}""")]
    [InlineData("""{"sku":"x","stock":5,"buckets":1,"perUserLimit":1,"startsAt":"2030-01-02T00:00:00Z","endsAt":"2030-01-01T00:00:00Z"}""")]
    [InlineData("""{"sku":"x","stock":5,""")]
    [InlineData("""[]""")]
    [InlineData("""null""")]
    public async Task Invalid_sales_are_refused_with_invalid_request(string body)
    {
        await AssertProblemAsync(Json(HttpMethod.Post, "/api/sales", body), HttpStatusCode.BadRequest, "invalid_request");
    }

    [Fact]
    public async Task Unknown_sales_are_404_and_malformed_skus_400()
    {
        await AssertProblemAsync(new HttpRequestMessage(HttpMethod.Get, $"/api/sales/{ClusterFixture.NewSku("none")}"), HttpStatusCode.NotFound, "unknown_sale");
        await AssertProblemAsync(Json(HttpMethod.Post, $"/api/sales/{ClusterFixture.NewSku("none")}/purchases", """{"userId":"u","quantity":1,"requestId":"r"}"""),
            HttpStatusCode.NotFound, "unknown_sale");
        await AssertProblemAsync(new HttpRequestMessage(HttpMethod.Get, "/api/sales/bad%20sku"), HttpStatusCode.BadRequest, "invalid_request");
    }

    [Fact]
    public async Task A_purchase_is_created_once_and_replayed_with_the_same_body()
    {
        var sku = await CreateSaleAsync();
        var request = """{"userId":"alice","quantity":2,"requestId":"req-1"}""";
        var (status, first, response) = await SendAsync(Json(HttpMethod.Post, $"/api/sales/{sku}/purchases", request, token: null));
        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal($"/api/orders/{first.GetProperty("orderId").GetString()}", response.Headers.Location?.ToString());
        Assert.Equal("reserved", first.GetProperty("status").GetString());

        var (again, second, _) = await SendAsync(Json(HttpMethod.Post, $"/api/sales/{sku}/purchases", request, token: null));
        Assert.Equal(HttpStatusCode.OK, again);
        Assert.Equal(first.ToString(), second.ToString());

        await AssertProblemAsync(Json(HttpMethod.Post, $"/api/sales/{sku}/purchases", """{"userId":"alice","quantity":1,"requestId":"req-2"}""", token: null),
            HttpStatusCode.Conflict, "limit_exceeded");
        Assert.Equal(8, (await fixture.RedisStockAsync(sku, 2)).Sum());
    }

    [Fact]
    public async Task Sold_out_is_a_conflict_with_its_code()
    {
        var sku = await CreateSaleAsync(stock: 1, buckets: 1, limit: 1);
        var (status, _, _) = await SendAsync(Json(HttpMethod.Post, $"/api/sales/{sku}/purchases", """{"userId":"a","quantity":1,"requestId":"r"}""", token: null));
        Assert.Equal(HttpStatusCode.Created, status);
        await AssertProblemAsync(Json(HttpMethod.Post, $"/api/sales/{sku}/purchases", """{"userId":"b","quantity":1,"requestId":"r"}""", token: null),
            HttpStatusCode.Conflict, "sold_out");
    }

    public static TheoryData<string> BadPurchases() => new()
    {
        """{"quantity":1,"requestId":"r"}""",
        """{"userId":"","quantity":1,"requestId":"r"}""",
        """{"userId":"u","quantity":1,"requestId":""}""",
        """{"userId":"u","quantity":1}""",
        """{"userId":"u","requestId":"r"}""",
        """{"userId":"u","quantity":0,"requestId":"r"}""",
        """{"userId":"u","quantity":-1,"requestId":"r"}""",
        """{"userId":"u","quantity":3,"requestId":"r"}""",
        """{"userId":"u","quantity":1.5,"requestId":"r"}""",
        """{"userId":"u","quantity":4294967297,"requestId":"r"}""",
        """{"userId":"u","quantity":"1","requestId":"r"}""",
        """{"userId":"u","quantity":1,"requestId":"r","quantity":2}""",
        $$"""{"userId":"{{new string('u', 65)}}","quantity":1,"requestId":"r"}""",
        $$"""{"userId":"u","quantity":1,"requestId":"{{new string('r', 65)}}"}""",
        """{"userId":"a\u0000b","quantity":1,"requestId":"r"}""",
        """{"userId":"a\nb","quantity":1,"requestId":"r"}""",
        """{"userId":"\ud800","quantity":1,"requestId":"r"}""",
        """{"userId":"u","quantity":1,"requestId":"r","admin":true}""",
        """{"userId":"u","quantity":1,""",
        """not json""",
    };

    [Theory]
    [MemberData(nameof(BadPurchases))]
    public async Task Bad_purchases_are_refused_with_a_code_and_deduct_nothing(string body)
    {
        var sku = await CreateSaleAsync(stock: 10, buckets: 2, limit: 2);
        await AssertProblemAsync(Json(HttpMethod.Post, $"/api/sales/{sku}/purchases", body, token: null), HttpStatusCode.BadRequest, "invalid_request");
        Assert.Equal(10, (await fixture.RedisStockAsync(sku, 2)).Sum());
        var status = await fixture.Client.Product(sku).GetStatusAsync(refresh: true);
        Assert.Equal(0, status!.Sold);
    }

    [Fact]
    public async Task Wrong_content_type_and_huge_bodies_are_refused()
    {
        var sku = await CreateSaleAsync();
        await AssertProblemAsync(Json(HttpMethod.Post, $"/api/sales/{sku}/purchases", """{"userId":"u","quantity":1,"requestId":"r"}""", token: null, contentType: "text/plain"),
            HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
        var huge = $$"""{"userId":"u","quantity":1,"requestId":"r","pad":"{{new string('x', 100_000)}}"}""";
        await AssertProblemAsync(Json(HttpMethod.Post, $"/api/sales/{sku}/purchases", huge, token: null), HttpStatusCode.RequestEntityTooLarge, "payload_too_large");
        Assert.Equal(10, (await fixture.RedisStockAsync(sku, 2)).Sum());
    }

    [Fact]
    public async Task Rebucketing_over_HTTP_returns_the_new_layout_and_refuses_bad_counts()
    {
        var sku = await CreateSaleAsync(stock: 100, buckets: 4);
        var (status, body, _) = await SendAsync(Json(HttpMethod.Put, $"/api/sales/{sku}/buckets", """{"buckets":7}"""));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(7, body.GetProperty("buckets").GetArrayLength());
        Assert.Equal(100, body.GetProperty("remaining").GetInt64());

        await AssertProblemAsync(Json(HttpMethod.Put, $"/api/sales/{sku}/buckets", """{"buckets":0}"""), HttpStatusCode.BadRequest, "invalid_request");
        await AssertProblemAsync(Json(HttpMethod.Put, $"/api/sales/{sku}/buckets", """{"buckets":101}"""), HttpStatusCode.BadRequest, "invalid_request");
        await AssertProblemAsync(Json(HttpMethod.Put, $"/api/sales/{ClusterFixture.NewSku("none")}/buckets", """{"buckets":2}"""), HttpStatusCode.NotFound, "unknown_sale");
    }
}
