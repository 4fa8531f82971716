using System.Net;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Hosting.Server.Features;
using OrleansFlashSale.Redis;
using StackExchange.Redis;

namespace OrleansFlashSale.Bench;

/// <summary>
/// The HTTP baseline: what a competent team without this project would put in front of Redis. A minimal ASP.NET
/// endpoint in this process (Kestrel on a loopback port) that validates the body and runs deduct.lua for the
/// user's bucket over one shared ConnectionMultiplexer, one call per request, the request id as order id (so a
/// retry is not deducted twice). No quota, no per-user limit, no order pipeline, no cache: every request asks Redis.
/// </summary>
public sealed class MinimalLuaEndpoint : IAsyncDisposable
{
    private readonly WebApplication _app;

    private MinimalLuaEndpoint(WebApplication app, string url)
    {
        _app = app;
        Url = url;
    }

    public string Url { get; }

    public static string PurchasePath(string sku) => $"/api/sales/{sku}/purchases";

    public static async Task<MinimalLuaEndpoint> StartAsync(IConnectionMultiplexer redis, int buckets)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.TypeInfoResolverChain.Insert(0, BaselineJson.Default));
        var app = builder.Build();
        var db = redis.GetDatabase();
        app.MapPost("/api/sales/{sku}/purchases", async (string sku, BaselinePurchase body) =>
        {
            if (string.IsNullOrEmpty(body.UserId) || string.IsNullOrEmpty(body.RequestId) || body.Quantity is not (>= 1 and <= 1_000_000))
            {
                return Results.Problem(statusCode: 400, extensions: new Dictionary<string, object?> { ["code"] = "invalid_request" });
            }

            var result = await GrainsVsRawLua.DeductRawAsync(db, sku, body.UserId, body.RequestId, body.RequestId, body.Quantity, buckets);
            var answer = result.Length == 2 ? result[1] : result[0];
            // A log entry id ("ms-seq") is a deduction; 2 is a retry of one.
            if (answer.Resp2Type == ResultType.BulkString || (answer.Resp2Type == ResultType.Integer && (long)answer == 2))
            {
                return Results.Json(new BaselineOrder(body.RequestId, sku, body.UserId, body.Quantity), BaselineJson.Default.BaselineOrder, statusCode: 201);
            }

            return Results.Problem(statusCode: 409, extensions: new Dictionary<string, object?> { ["code"] = "sold_out" });
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new MinimalLuaEndpoint(app, address);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

public sealed record BaselinePurchase(string? UserId, int Quantity, string? RequestId);

public sealed record BaselineOrder(string OrderId, string Sku, string UserId, int Quantity);

[JsonSourceGenerationOptions(System.Text.Json.JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(BaselinePurchase))]
[JsonSerializable(typeof(BaselineOrder))]
internal sealed partial class BaselineJson : JsonSerializerContext;
