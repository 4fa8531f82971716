using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace OrleansFlashSale.Persistence;

public static class OrderStoreServiceCollectionExtensions
{
    /// <summary>The silo database, used when <c>FlashSale:OrderStore:ConnectionString</c> is empty.</summary>
    private const string SiloDatabaseKey = "FlashSale:MySql:ConnectionString";

    /// <summary>
    /// The MySQL persistence stage: <see cref="OrderStoreOptions"/> validated at start, the stores
    /// (<see cref="MySqlOrderStore"/>, <see cref="GroupCommitter"/>, <see cref="DatabaseDeductor"/>,
    /// <see cref="OrderLifecycleStore"/>, <see cref="OrderReadStore"/>) as singletons, and the project's metrics.
    /// </summary>
    public static IServiceCollection AddFlashSaleOrderStore(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<OrderStoreOptions>()
            .Bind(configuration.GetSection(OrderStoreOptions.Section))
            .PostConfigure(o =>
            {
                // Orders live next to grain state unless told otherwise: one setting, not two to keep in step.
                if (string.IsNullOrWhiteSpace(o.ConnectionString))
                {
                    o.ConnectionString = configuration[SiloDatabaseKey] ?? "";
                }
            })
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<OrderStoreOptions>, OrderStoreOptionsValidator>());
        services.AddMetrics();
        services.TryAddSingleton<OrderStoreMetrics>();
        services.TryAddSingleton<MySqlOrderStore>();
        services.TryAddSingleton<GroupCommitter>();
        services.TryAddSingleton<DatabaseDeductor>();
        services.TryAddSingleton<OrderLifecycleStore>();
        services.TryAddSingleton<IOrderLifecycleStore>(sp => sp.GetRequiredService<OrderLifecycleStore>());
        services.TryAddSingleton<IInventoryStore>(sp => sp.GetRequiredService<MySqlOrderStore>());
        services.TryAddSingleton<IDatabaseDeductor>(sp => sp.GetRequiredService<DatabaseDeductor>());
        services.TryAddSingleton<OrderReadStore>();
        services.TryAddSingleton<IOrderReadStore>(sp => sp.GetRequiredService<OrderReadStore>());
        return services;
    }
}
