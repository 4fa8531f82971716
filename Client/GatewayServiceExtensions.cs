using Microsoft.Extensions.Options;
using OrleansFlashSale.Client.Api;
using OrleansFlashSale.Client.Api.Dashboard;
using OrleansFlashSale.ClientLibrary;

namespace OrleansFlashSale.Client;

public static class GatewayServiceExtensions
{
    /// <summary>The gateway's services (the composition root of <c>Api/</c>); the caller supplies an <see cref="IGrainFactory"/> (the cluster client).</summary>
    public static IServiceCollection AddFlashSaleGateway(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<GatewayOptions>().Bind(configuration.GetSection(GatewayOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<GatewayOptions>, GatewayOptionsValidator>();
        services.AddSingleton<JsonBody>();
        services.AddSingleton<AdminAuth>();
        services.AddFlashSalePurchasing(configuration);
        services.AddFlashSaleSecurity(configuration);
        services.AddMetrics();
        services.AddSingleton<SoldOutCache>();
        services.AddFlashSaleDashboard();
        services.AddProblemDetails();
        services.AddFlashSaleOpenApi();
        services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull;
        });
        return services;
    }
}
