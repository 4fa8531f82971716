using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace OrleansFlashSale.ClientLibrary;

public static class PurchaseClientServiceCollectionExtensions
{
    /// <summary>
    /// Registers the <see cref="PurchaseClient"/> (one per process) with its options from
    /// <see cref="PurchaseClientOptions.Section"/>, validated on start. The caller registers the cluster client.
    /// </summary>
    public static IServiceCollection AddFlashSalePurchasing(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<PurchaseClientOptions>().Bind(configuration.GetSection(PurchaseClientOptions.Section)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PurchaseClientOptions>, PurchaseClientOptionsValidator>());
        services.TryAddSingleton<PurchaseClient>();
        return services;
    }
}
