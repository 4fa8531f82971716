using OrleansFlashSale.ClientLibrary;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using StackExchange.Redis;

namespace OrleansFlashSale.Bench;

/// <summary>An Orleans cluster client in the bench process, joined to the running silo through Redis membership.</summary>
public static class ClusterClient
{
    public static (string Redis, string ClusterId, string ServiceId) FromEnvironment()
    {
        var redis = Environment.GetEnvironmentVariable("FlashSale__Redis__ConnectionString");
        if (string.IsNullOrWhiteSpace(redis))
        {
            throw new UsageException("FlashSale__Redis__ConnectionString is not set: run the benchmark through ./flashsale bench");
        }

        return (redis,
            Environment.GetEnvironmentVariable("FlashSale__Gateway__ClusterId") is { Length: > 0 } c ? c : "flashsale",
            Environment.GetEnvironmentVariable("FlashSale__Gateway__ServiceId") is { Length: > 0 } s ? s : "flashsale");
    }

    public static IHost Build(string redis, string clusterId, string serviceId)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        // Log lines would tear the live table apart; failures surface as exceptions of the calls.
        builder.Logging.ClearProviders();
        builder.UseOrleansClient(client =>
        {
            client.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = clusterId;
                o.ServiceId = serviceId;
            });
            // Gateways are read from the membership table, so the silo's gateway port is whatever it registered.
            client.UseRedisClustering(o =>
            {
                o.ConfigurationOptions = ConfigurationOptions.Parse(redis);
                o.ConfigurationOptions.AbortOnConnectFail = false;
            });
        });
        // Purchases go through the client library, exactly as a gateway service sends them.
        builder.Services.AddFlashSalePurchasing(builder.Configuration);
        return builder.Build();
    }
}
