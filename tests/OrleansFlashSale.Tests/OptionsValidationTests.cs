using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using OrleansFlashSale.Client.Api;
using OrleansFlashSale.Grains;
using OrleansFlashSale.Grains.Persistence;

namespace OrleansFlashSale.Tests;

/// <summary>A bad setting stops the host at start with a message naming the setting.</summary>
public sealed class OptionsValidationTests
{
    private static async Task<string> StartFailureAsync(Dictionary<string, string?> settings, Action<IServiceCollection, IConfiguration> register)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddInMemoryCollection(settings);
        register(builder.Services, builder.Configuration);
        using var host = builder.Build();
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        return error.Message;
    }

    [Fact]
    public async Task Missing_redis_connection_string_is_named()
    {
        var message = await StartFailureAsync(new(), (s, c) => s.AddFlashSaleGrains(c));
        Assert.Contains("FlashSale:Redis:ConnectionString is required", message);
    }

    [Fact]
    public async Task Out_of_range_batch_size_is_named()
    {
        var message = await StartFailureAsync(new()
        {
            ["FlashSale:Redis:ConnectionString"] = "127.0.0.1:1",
            ["FlashSale:Deduction:MaxBatch"] = "0",
        }, (s, c) => s.AddFlashSaleGrains(c));
        Assert.Contains("FlashSale:Deduction:MaxBatch must be between 1 and 4096", message);
    }

    [Fact]
    public async Task Short_admin_token_is_named()
    {
        var message = await StartFailureAsync(new() { ["FlashSale:Gateway:AdminToken"] = "short" }, (s, c) => s.AddFlashSaleGateway(c));
        Assert.Contains("FlashSale:Gateway:AdminToken must be set", message);
    }

    [Fact]
    public async Task Bad_order_store_settings_are_named()
    {
        var message = await StartFailureAsync(new()
        {
            ["FlashSale:OrderStore:ConnectionString"] = "Server=127.0.0.1;Database=flashsale",
            ["FlashSale:OrderStore:MaxGroupSize"] = "0",
            ["FlashSale:OrderStore:MaxRetries"] = "-1",
        }, (s, c) => s.AddFlashSaleOrderStore(c));
        Assert.Contains("FlashSale:OrderStore:MaxGroupSize must be between 1 and 10000", message);
        Assert.Contains("FlashSale:OrderStore:MaxRetries must be between 0 and 100", message);
    }

    [Fact]
    public async Task Missing_order_store_connection_string_is_named()
    {
        var message = await StartFailureAsync(new(), (s, c) => s.AddFlashSaleOrderStore(c));
        Assert.Contains("FlashSale:OrderStore:ConnectionString is required", message);
    }

    [Fact]
    public void Options_never_print_secrets()
    {
        var redis = new OrleansFlashSale.Grains.Redis.FlashSaleRedisOptions { ConnectionString = "127.0.0.1:1,password=hunter2secret" };
        var mysql = new OrleansFlashSale.Silo.FlashSaleMySqlOptions { ConnectionString = "Server=h;Database=d;User ID=u;Password=hunter2secret" };
        var gateway = new GatewayOptions { AdminToken = "hunter2secret-admin-token" };
        var orders = new OrderStoreOptions { ConnectionString = "Server=h;Database=d;User ID=u;Password=hunter2secret" };
        Assert.DoesNotContain("hunter2", orders.ToString());
        Assert.DoesNotContain("hunter2", redis.ToString());
        Assert.DoesNotContain("hunter2", mysql.ToString());
        Assert.DoesNotContain("hunter2", gateway.ToString());
    }
}
