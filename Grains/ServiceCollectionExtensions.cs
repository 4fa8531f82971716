using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using OrleansFlashSale.Grains.Redis;

namespace OrleansFlashSale.Grains;

public static class ServiceCollectionExtensions
{
    /// <summary>What the grains need: options validated at start, the shared Redis connection, scripts, metrics.</summary>
    public static IServiceCollection AddFlashSaleGrains(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<FlashSaleRedisOptions>().Bind(configuration.GetSection(FlashSaleRedisOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<FlashSaleRedisOptions>, FlashSaleRedisOptionsValidator>();
        services.AddOptions<DeductionOptions>().Bind(configuration.GetSection(DeductionOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<DeductionOptions>, DeductionOptionsValidator>();
        services.TryAddSingleton<RedisConnection>();
        services.TryAddSingleton<RedisScripts>();
        services.TryAddSingleton(TimeProvider.System);
        services.AddMetrics();
        services.TryAddSingleton<FlashSaleMetrics>();
        return services;
    }
}
