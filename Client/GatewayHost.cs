using Microsoft.Extensions.Diagnostics.HealthChecks;
using Orleans.Configuration;
using OrleansFlashSale.Client.Api;
using OrleansFlashSale.Client.Api.Admission;
using OrleansFlashSale.Client.Api.Dashboard;
using OrleansFlashSale.ServiceDefaults;
using StackExchange.Redis;

namespace OrleansFlashSale.Client;

/// <summary>The HTTP gateway: minimal API in front of the Orleans cluster client.</summary>
public static class GatewayHost
{
    public static async Task<int> RunAsync(string[] args)
    {
        // Content root is the program's folder, so appsettings.json is found whatever the working directory.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        var gateway = builder.Configuration.GetSection(Api.GatewayOptions.Section).Get<Api.GatewayOptions>() ?? new Api.GatewayOptions();
        var redis = builder.Configuration["FlashSale:Redis:ConnectionString"];
        if (string.IsNullOrWhiteSpace(redis))
        {
            await Console.Error.WriteLineAsync("Configuration error: FlashSale:Redis:ConnectionString is required (the cluster's membership lives in Redis).");
            return 2;
        }

        builder.UseOrleansClient(client =>
        {
            client.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = gateway.ClusterId;
                o.ServiceId = gateway.ServiceId;
            });
            client.UseRedisClustering(o =>
            {
                o.ConfigurationOptions = ConfigurationOptions.Parse(redis);
                o.ConfigurationOptions.AbortOnConnectFail = false;
            });
            client.AddActivityPropagation();
            if (gateway.OrleansDashboard)
            {
                client.AddFlashSaleOrleansDashboard();
            }
        });
        builder.Services.AddFlashSaleGateway(builder.Configuration);
        builder.AddFlashSaleTelemetry("flashsale-gateway", FlashSaleMeter.Name);
        builder.Services.AddFlashSaleAdmission(builder.Configuration);
        builder.Services.AddHealthChecks().AddCheck<ClusterHealthCheck>("cluster", tags: ["ready"]);

        var app = builder.Build();
        app.UseStatusCodePages();
        app.MapFlashSaleHealth();
        app.UseFlashSaleAdmission();
        app.MapFlashSaleApi();
        app.MapFlashSaleDashboard(orleansDashboard: gateway.OrleansDashboard);
        app.MapFlashSaleCluster();
        return await app.RunFlashSaleAsync();
    }

    /// <summary>Ready when a grain call goes through the cluster client and comes back.</summary>
    private sealed class ClusterHealthCheck(IGrainFactory grains) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            try
            {
                await grains.Product("health-probe").GetDefinitionAsync().WaitAsync(TimeSpan.FromSeconds(5), cancellationToken);
                return HealthCheckResult.Healthy();
            }
            catch (Exception ex)
            {
                return HealthCheckResult.Unhealthy("the cluster does not answer", ex);
            }
        }
    }
}
