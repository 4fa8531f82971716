using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace OrleansFlashSale.Redis;

public static class RedisServiceCollectionExtensions
{
    /// <summary>
    /// Stock in Redis: <see cref="FlashSaleRedisOptions"/> and <see cref="DeductionOptions"/> validated at start, the
    /// process's one <see cref="RedisConnection"/> and the loaded <see cref="RedisScripts"/>.
    /// </summary>
    public static IServiceCollection AddFlashSaleRedis(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<FlashSaleRedisOptions>().Bind(configuration.GetSection(FlashSaleRedisOptions.Section)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<FlashSaleRedisOptions>, FlashSaleRedisOptionsValidator>());
        services.AddOptions<DeductionOptions>().Bind(configuration.GetSection(DeductionOptions.Section)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<DeductionOptions>, DeductionOptionsValidator>());
        services.TryAddSingleton<RedisConnection>();
        services.TryAddSingleton<RedisScripts>();
        return services;
    }
}
