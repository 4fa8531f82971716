using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace OrleansFlashSale.Messaging;

public static class MessagingServiceCollectionExtensions
{
    /// <summary>
    /// Transactional messages on NATS JetStream: options (section <c>FlashSale:Nats</c>, validated at start), the
    /// shared connection, <see cref="ITransactionalProducer"/>, <see cref="IPipelineQueue"/> and the <see cref="TransactionCheckService"/>. The
    /// application registers its <see cref="ITransactionChecker"/>.
    /// </summary>
    public static IServiceCollection AddFlashSaleMessaging(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<JetStreamOptions>().Bind(configuration.GetSection(JetStreamOptions.Section)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<JetStreamOptions>, JetStreamOptionsValidator>());
        services.TryAddSingleton<JetStreamConnection>();
        services.TryAddSingleton<JetStreamTransactionalProducer>();
        services.TryAddSingleton<ITransactionalProducer>(sp => sp.GetRequiredService<JetStreamTransactionalProducer>());
        services.TryAddSingleton<IPipelineQueue, JetStreamPipelineQueue>();
        services.AddMetrics();
        services.TryAddSingleton<MessagingMetrics>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, TransactionCheckService>());
        return services;
    }
}
