using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using CsCheck;
using OrleansFlashSale.Redis;
using OrleansFlashSale.Tests.Overload;
using StackExchange.Redis;

namespace OrleansFlashSale.Tests;

/// <summary>
/// Random hostile input, generated with CsCheck, over the HTTP API and straight into the Lua scripts: every request
/// that cannot be a valid purchase is a 4xx problem with a code and deducts nothing; the scripts never write half a
/// purchase nor go below zero; strings that mean something to SQL or to the Redis protocol are only ever data.
/// The fixed cases (HttpApiTests, ScriptTests) stay; these add the combinations nobody thought to write down.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class HostileInputTests(ClusterFixture fixture)
{
    /// <summary>Strings that mean something to MySQL, Redis, shells, JSON or terminals.</summary>
    private static readonly string[] Nasty =
    [
        "'; DROP TABLE orders; --", "\" OR 1=1 --", "x' UNION SELECT password FROM mysql.user #", "\r\n*3\r\n$3\r\nDEL\r\n$3\r\nkey\r\n",
        "*1\r\n$8\r\nFLUSHALL\r\n", "{fs:other}:b0", "$(reboot)", "\\u0000", "\u0000", "\u001b[2J", "\u202egnp.exe", "\ud800", "用户💥",
        "𝔘𝔰𝔢𝔯", "\t", " ", "%00", "../../etc/passwd", "<script>alert(1)</script>", new string('x', 65), new string('é', 64) + "!", "",
    ];

    private static readonly Gen<string> AnyString = Gen.Frequency(
        (3, Gen.OneOf(Nasty.Select(Gen.Const).ToArray())),
        (2, Gen.String[Gen.Char, 0, 80]),
        (1, Gen.String[Gen.Char['\0', '\u001f'], 1, 10]));

    /// <summary>JSON tokens no purchase quantity may be (the sale's limit is 2).</summary>
    private static readonly Gen<string> BadQuantity = Gen.OneOf(
        Gen.OneOf(Gen.Const("0"), Gen.Const("-1"), Gen.Const("3"), Gen.Const("2147483648"), Gen.Const("-2147483649"), Gen.Const("9223372036854775808"),
            Gen.Const("1e309"), Gen.Const("1.0"), Gen.Const("1e0"), Gen.Const("0x1"), Gen.Const("01"), Gen.Const("\"1\""), Gen.Const("null"),
            Gen.Const("true"), Gen.Const("[1]"), Gen.Const("{}"), Gen.Const("NaN"), Gen.Const("Infinity"), Gen.Const("-0")),
        Gen.Long.Where(q => q is < 0 or > 2).Select(q => q.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        Gen.String[Gen.Char['0', '9'], 20, 60]);

    private static string Json(string value) => JsonSerializer.Serialize(value);

    /// <summary>Bodies that must be refused: at least one part is wrong, whatever the others are.</summary>
    private static readonly Gen<(string Body, string ContentType)> HostilePurchase = Gen.OneOf(
        // A well-formed object whose quantity is never valid.
        Gen.Select(AnyString, AnyString, BadQuantity).Select((u, r, q) => ($$"""{"userId":{{Json(u)}},"quantity":{{q}},"requestId":{{Json(r)}}}""", "application/json")),
        // Duplicate members, the second one valid: the first must not win silently, nor the second.
        Gen.Select(AnyString, AnyString).Select((u, r) => ($$"""{"userId":{{Json(u)}},"quantity":1,"requestId":{{Json(r)}},"quantity":1}""", "application/json")),
        Gen.Select(AnyString, AnyString).Select((u, r) => ($$"""{"userId":"ok-user","userId":{{Json(u)}},"quantity":1,"requestId":{{Json(r)}}}""", "application/json")),
        // Unknown members (mass assignment).
        Gen.Select(AnyString, AnyString).Select((u, k) => ($$"""{"userId":"ok-user","quantity":1,"requestId":"ok-req",{{Json(k + "x")}}:{{Json(u)}}}""", "application/json")),
        // Random text, truncated JSON, deep nesting.
        Gen.String[Gen.Char, 0, 200].Select(t => (t, "application/json")),
        Gen.Int[1, 53].Select(n => ("""{"userId":"ok-user","quantity":1,"requestId":"ok-req" """[..n], "application/json")),
        Gen.Int[65, 2000].Select(n => (new string('[', n) + new string(']', n), "application/json")),
        // A valid purchase in the wrong clothes.
        Gen.OneOf(Gen.Const("text/plain"), Gen.Const("application/xml"), Gen.Const("application/x-www-form-urlencoded"), Gen.Const("multipart/form-data"),
            Gen.Const("application/jsonx"), Gen.Const("json"), Gen.Const("application/javascript"))
            .Select(t => ("""{"userId":"ok-user","quantity":1,"requestId":"ok-req"}""", t)),
        // Bodies over the size limit, valid up to the padding.
        Gen.Int[16 * 1024, 200 * 1024].Select(n => ($$"""{"userId":"ok-user","quantity":1,"requestId":"ok-req","pad":"{{new string('p', n)}}"}""", "application/json")));

    private static readonly string[] RefusalCodes = ["invalid_request", "unsupported_media_type", "payload_too_large"];

    private static async Task<(HttpStatusCode Status, string? Code)> PostAsync(HttpClient http, string path, string body, string contentType)
    {
        using var content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
        content.Headers.ContentType = MediaTypeHeaderValue.TryParse(contentType, out var type) ? type : null;
        using var response = await http.PostAsync(path, content);
        var text = await response.Content.ReadAsStringAsync();
        string? code = null;
        if (response.Content.Headers.ContentType?.MediaType == "application/problem+json")
        {
            code = JsonDocument.Parse(text).RootElement.TryGetProperty("code", out var c) ? c.GetString() : null;
        }

        return (response.StatusCode, code);
    }

    [Fact]
    public async Task Random_hostile_purchases_are_refused_with_a_code_and_deduct_nothing()
    {
        // Rate limits off: each refusal must be the validation's own answer, not a 429.
        await using var gateway = await TestGateway.StartAsync(fixture, new()
        {
            ["FlashSale:Gateway:RateLimits:PerUser:TokenLimit"] = "0",
            ["FlashSale:Gateway:RateLimits:PerIp:TokenLimit"] = "0",
        });
        using var http = gateway.CreateClient(TimeSpan.FromSeconds(60));
        var sale = await fixture.CreateSaleAsync("hostile", stock: 50, buckets: 2, perUserLimit: 2);
        var answered = 0;

        await HostilePurchase.SampleAsync(async sample =>
        {
            var (status, code) = await PostAsync(http, $"/api/sales/{sale.Sku}/purchases", sample.Body, sample.ContentType);
            Assert.True((int)status is >= 400 and < 500 and not 404, $"answered {(int)status} to {Describe(sample)}");
            Assert.Contains(code, RefusalCodes);
            Interlocked.Increment(ref answered);
        }, iter: 400, threads: 1);

        Assert.Equal(400, answered);
        Assert.Equal(50, (await fixture.RedisStockAsync(sale.Sku, 2)).Sum());
        Assert.Equal(0, (await fixture.Client.Product(sale.Sku).GetStatusAsync(refresh: true))!.Sold);
        // Still up and still selling.
        Assert.Equal(HttpStatusCode.Created, (await PostAsync(http, $"/api/sales/{sale.Sku}/purchases",
            """{"userId":"after","quantity":1,"requestId":"after-1"}""", "application/json")).Status);
        await fixture.AssertNoDriftAsync(sale.Sku);
    }

    [Fact]
    public async Task Random_hostile_sku_in_the_path_or_the_sale_body_is_refused()
    {
        await HostileSkuAsync(fixture.Http);
    }

    private async Task HostileSkuAsync(HttpClient http)
    {
        // Only strings a URL can carry (no lone surrogates): the rest cannot be sent as a path at all.
        await AnyString.Where(s => s.Length > 0 && !SaleRules.IsValidSku(s) && Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(s)) == s).SampleAsync(async sku =>
        {
            var path = $"/api/sales/{Uri.EscapeDataString(sku)}/purchases";
            var (status, code) = await PostAsync(http, path, """{"userId":"u","quantity":1,"requestId":"r"}""", "application/json");
            // Kestrel itself refuses a NUL (%00) in a path with a bare 400, before any application code runs.
            var expectedCode = sku.Contains('\0', StringComparison.Ordinal) ? null : "invalid_request";
            Assert.True(status == HttpStatusCode.BadRequest && code == expectedCode, $"answered {(int)status} {code} to sku {Json(sku)}");

            using var create = new HttpRequestMessage(HttpMethod.Post, "/api/sales")
            {
                Content = new StringContent($$"""{"sku":{{Json(sku)}},"stock":5,"buckets":1,"perUserLimit":1}""", Encoding.UTF8, "application/json"),
            };
            create.Headers.Authorization = new AuthenticationHeaderValue("Bearer", TestStack.AdminToken);
            using var response = await http.SendAsync(create);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        }, iter: 150, threads: 1);
    }

    [Theory]
    [InlineData("9223372036854775807")]
    [InlineData("9223372036854775808")]
    [InlineData("-9223372036854775808")]
    [InlineData("4294967296")]
    [InlineData("1000000001")]
    [InlineData("1e18")]
    public async Task Stock_that_overflows_or_exceeds_the_maximum_is_refused_and_no_sale_is_created(string stock)
    {
        var sku = ClusterFixture.NewSku("ovf");
        using var create = new HttpRequestMessage(HttpMethod.Post, "/api/sales")
        {
            Content = new StringContent($$"""{"sku":"{{sku}}","stock":{{stock}},"buckets":1,"perUserLimit":1}""", Encoding.UTF8, "application/json"),
        };
        create.Headers.Authorization = new AuthenticationHeaderValue("Bearer", TestStack.AdminToken);
        using var response = await fixture.Http.SendAsync(create);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Null(await fixture.Client.Product(sku).GetDefinitionAsync());
    }

    [Theory]
    [InlineData("x'); DROP TABLE orders; --")]
    [InlineData("\" OR \"1\"=\"1")]
    [InlineData("*3 $3 DEL $1 k")]
    [InlineData("{fs:other}:b0")]
    [InlineData("用户💥\\")]
    public async Task An_injection_string_as_user_id_is_stored_verbatim_in_MySQL(string user)
    {
        var sale = await fixture.CreateSaleAsync("verbatim", stock: 5, buckets: 1, perUserLimit: 1);
        var (status, _) = await PostAsync(fixture.Http, $"/api/sales/{sale.Sku}/purchases",
            $$"""{"userId":{{Json(user)}},"quantity":1,"requestId":{{Json(user)}}}""", "application/json");
        Assert.Equal(HttpStatusCode.Created, status);
        await TestDb.WaitUntilAsync(async () => await TestDb.ScalarAsync("SELECT COUNT(*) FROM orders WHERE sku = @sku", ("@sku", sale.Sku)) == 1,
            TimeSpan.FromSeconds(60));
        Assert.Equal(1, await TestDb.ScalarAsync("SELECT COUNT(*) FROM orders WHERE sku = @sku AND user_id = @u AND request_id = @u",
            ("@sku", sale.Sku), ("@u", user)));
        Assert.True(await TestDb.ScalarAsync("SELECT COUNT(*) FROM orders") >= 1, "the orders table is still there");
        await fixture.AssertNoDriftAsync(sale.Sku);
    }

    [Theory]
    [InlineData("\r\n*3\r\n$3\r\nDEL\r\n$3\r\nkey\r\n")]
    [InlineData("a\u0000b")]
    [InlineData("\u001b[2J")]
    public async Task A_user_id_with_control_characters_is_refused(string user)
    {
        var sale = await fixture.CreateSaleAsync("ctl", stock: 5, buckets: 1, perUserLimit: 1);
        var (status, code) = await PostAsync(fixture.Http, $"/api/sales/{sale.Sku}/purchases",
            $$"""{"userId":{{Json(user)}},"quantity":1,"requestId":"r"}""", "application/json");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_request", code);
        Assert.Equal(5, (await fixture.RedisStockAsync(sale.Sku, 1)).Sum());
    }

    /// <summary>One purchase handed to deduct.lua as raw strings, and what the script must make of it.</summary>
    private sealed record Item(string Order, string User, string Quantity);

    private static readonly Gen<string> LuaQuantity = Gen.Frequency(
        (4, Gen.Int[1, 6].Select(q => q.ToString(System.Globalization.CultureInfo.InvariantCulture))),
        (1, Gen.OneOf(Gen.Const("0"), Gen.Const("-1"), Gen.Const("1e3"), Gen.Const("0x10"), Gen.Const("1.0"), Gen.Const(" 1"), Gen.Const("1\r\n"),
            Gen.Const("1000001"), Gen.Const("99999999999999999999"), Gen.Const(""), Gen.Const("01"))),
        (1, AnyString));

    [Fact]
    public async Task Deduct_script_with_random_batches_never_writes_half_a_purchase_nor_goes_below_zero()
    {
        var scripts = new RedisScripts();
        var db = fixture.Redis.GetDatabase();
        // A small pool of order ids makes repeats within and across batches likely.
        var item = Gen.Select(Gen.Int[0, 11], AnyString, LuaQuantity).Select((o, u, q) => new Item($"o{o}", u, q));
        var gen = Gen.Select(Gen.Int[0, 20], item.Array[1, 12].Array[1, 4]);

        await gen.SampleAsync(async sample =>
        {
            var (initial, batches) = sample;
            var sku = ClusterFixture.NewSku("lua-prop");
            var stockKey = RedisKeys.Stock(sku, 0);
            await db.StringSetAsync(stockKey, initial);
            long stock = initial;
            var deducted = new Dictionary<string, Item>();
            foreach (var batch in batches)
            {
                var tx = Guid.NewGuid().ToString("N");
                var keys = new List<RedisKey> { stockKey, RedisKeys.Log(sku, 0), RedisKeys.Fence(sku, 0, tx) };
                var args = new List<RedisValue> { 0, 600, tx };
                foreach (var i in batch)
                {
                    keys.Add(RedisKeys.OrderMarker(sku, 0, i.Order));
                    args.AddRange([i.Order, i.User, "req-" + i.Order, i.Quantity]);
                }

                var results = (RedisResult[])(await RedisScripts.EvaluateAsync(db, scripts.Deduct, keys.ToArray(), args.ToArray()))!;
                for (var k = 0; k < batch.Length; k++)
                {
                    var i = batch[k];
                    var valid = System.Text.RegularExpressions.Regex.IsMatch(i.Quantity, @"^[1-9][0-9]{0,6}\z") && long.Parse(i.Quantity) <= 1_000_000;
                    var expected = !valid ? "-2" : deducted.ContainsKey(i.Order) ? "2" : stock < long.Parse(i.Quantity) ? "0" : "log";
                    var actual = results[k + 1].ToString();
                    Assert.Equal(expected, expected == "log" && actual.Contains('-') && !actual.StartsWith('-') ? "log" : actual);
                    if (expected == "log")
                    {
                        stock -= long.Parse(i.Quantity);
                        deducted[i.Order] = i;
                    }
                }

                Assert.Equal(stock, (long)results[0]);
            }

            Assert.Equal(stock, (long)await db.StringGetAsync(stockKey));
            Assert.True(stock >= 0);
            var log = await db.StreamRangeAsync(RedisKeys.Log(sku, 0));
            Assert.Equal(deducted.Count, log.Length);
            foreach (var entry in log)
            {
                var fields = entry.Values.ToDictionary(v => (string)v.Name!, v => v.Value);
                var expected = deducted[(string)fields["o"]!];
                // Byte for byte: a Redis-protocol string in a user id is data, not a command.
                Assert.Equal((byte[])Encoding.UTF8.GetBytes(expected.User), (byte[])fields["u"]!);
                Assert.Equal(expected.Quantity, (string)fields["q"]!);
            }

            for (var o = 0; o < 12; o++)
            {
                Assert.Equal(deducted.ContainsKey($"o{o}"), await db.KeyExistsAsync(RedisKeys.OrderMarker(sku, 0, $"o{o}")));
            }

            await db.KeyDeleteAsync([stockKey, RedisKeys.Log(sku, 0), .. Enumerable.Range(0, 12).Select(o => RedisKeys.OrderMarker(sku, 0, $"o{o}"))]);
        }, iter: 150, threads: 1);
    }

    private static string Describe((string Body, string ContentType) sample) =>
        $"{sample.ContentType} body {(sample.Body.Length > 200 ? sample.Body[..200] + $"… ({sample.Body.Length} chars)" : Json(sample.Body))}";
}
