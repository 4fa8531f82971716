using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Hosting;
using OrleansFlashSale.Grains.Messaging;
using OrleansFlashSale.Grains.Persistence;
using OrleansFlashSale.Grains.Pipeline;
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
        services.TryAddSingleton(new SaleClock(TimeProvider.System));
        services.AddMetrics();
        services.TryAddSingleton<FlashSaleMetrics>();
        services.TryAddSingleton<IPipelineFaults, NoPipelineFaults>();

        // The order pipeline: transactional messages on JetStream, answered from Redis, written to MySQL in groups.
        services.AddFlashSaleMessaging(configuration);
        services.TryAddSingleton<ITransactionChecker, RedisTransactionChecker>();
        services.AddFlashSaleOrderStore(configuration);
        services.TryAddSingleton<WriterPacer>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, OrderWriterService>());
        services.AddOptions<OrderExpiryOptions>().Bind(configuration.GetSection(OrderExpiryOptions.Section));
        return services;
    }
}
