using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using OrleansFlashSale.Pipeline;
using OrleansFlashSale.Redis;

namespace OrleansFlashSale.Grains;

public static class ServiceCollectionExtensions
{
    /// <summary>
    /// What the grains need of their own: Redis (options validated at start, the shared connection, scripts), the sale
    /// clock, their metrics and the pipeline fault hook (none outside tests). The silo's <c>AddFlashSale</c> adds the
    /// messaging, store and pipeline services they call.
    /// </summary>
    public static IServiceCollection AddFlashSaleGrains(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddFlashSaleRedis(configuration);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<DeductionOptions>, TransactionEpochValidator>());
        services.TryAddSingleton(new SaleClock(TimeProvider.System));
        services.AddMetrics();
        services.TryAddSingleton<FlashSaleMetrics>();
        services.TryAddSingleton<PipelineMetrics>();
        services.TryAddSingleton<IPipelineFaults, NoPipelineFaults>();
        return services;
    }
}
