using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using OrleansFlashSale.Messaging;

namespace OrleansFlashSale.Pipeline;

public static class PipelineServiceCollectionExtensions
{
    /// <summary>
    /// The order pipeline's silo services: the check-back answered from Redis (<see cref="ITransactionChecker"/>), the
    /// order writer from JetStream into MySQL with its pace, and the expiry sweep of unpaid orders. Needs Redis,
    /// messaging and the order store registered, and a grain factory (a silo).
    /// </summary>
    public static IServiceCollection AddFlashSalePipeline(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddMetrics();
        services.TryAddSingleton<PipelineMetrics>();
        services.TryAddSingleton<ITransactionChecker, RedisTransactionChecker>();
        services.TryAddSingleton<WriterPacer>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, OrderWriterService>());
        services.AddOptions<OrderExpiryOptions>().Bind(configuration.GetSection(OrderExpiryOptions.Section));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, OrderExpiryService>());
        return services;
    }
}
