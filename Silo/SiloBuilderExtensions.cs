using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Clustering.Redis;
using Orleans.Configuration;
using OrleansFlashSale.Grains;
using OrleansFlashSale.Messaging;
using OrleansFlashSale.Persistence;
using OrleansFlashSale.Pipeline;
using OrleansFlashSale.Redis;
using OrleansFlashSale.ServiceDefaults;
using StackExchange.Redis;

namespace OrleansFlashSale.Silo;

public static class SiloBuilderExtensions
{
    /// <summary>The grain storage provider name used by <c>[PersistentState]</c> in this project.</summary>
    public const string StorageName = "flashsale";

    /// <summary>
    /// Everything a FlashSale silo needs except its endpoints and clustering, in one call: the grains' services, the
    /// messaging, order store and pipeline libraries with every hosted service (check-back, order writer, expiry
    /// sweep), the SQL schema applied at start, and grain state in MySQL through the ADO.NET provider.
    /// </summary>
    public static ISiloBuilder AddFlashSale(this ISiloBuilder silo, IConfiguration configuration)
    {
        var services = silo.Services;
        services.AddFlashSaleGrains(configuration);
        // Transactional messages on JetStream (with their check-back), answered from Redis; orders written to MySQL.
        services.AddFlashSaleMessaging(configuration);
        services.AddFlashSaleOrderStore(configuration);
        services.AddFlashSalePipeline(configuration);
        services.AddSingleton<IRedisMultiplexerSource, TracedRedis>();
        services.AddOptions<FlashSaleMySqlOptions>().Bind(configuration.GetSection(FlashSaleMySqlOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<FlashSaleMySqlOptions>, FlashSaleMySqlOptionsValidator>();
        services.AddSingleton(sp => new SchemaMigrator(
            sp.GetRequiredService<IOptions<FlashSaleMySqlOptions>>().Value.ConnectionString, sp.GetRequiredService<ILogger<SchemaMigrator>>()));
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>, SchemaLifecycleParticipant>();

        // Committed deductions reach the JetStream bridge on a memory stream; a lost event is recovered by the
        // transactional check-back, so the stream need not be durable.
        silo.AddMemoryStreams(PipelineStreams.Provider);
        silo.AddIncomingGrainCallFilter<DependencyExceptionFilter>();
        silo.AddMemoryGrainStorage("PubSubStore");

        silo.AddAdoNetGrainStorage(StorageName, (OptionsBuilder<AdoNetGrainStorageOptions> storage) =>
            storage.Configure<IOptions<FlashSaleMySqlOptions>>((o, mysql) =>
            {
                o.Invariant = "MySql.Data.MySqlConnector";
                o.ConnectionString = mysql.Value.ConnectionString;
            }));
        return silo;
    }

    /// <summary>Membership in Redis, through the process's shared multiplexer.</summary>
    public static ISiloBuilder UseFlashSaleRedisClustering(this ISiloBuilder silo, IConfiguration configuration)
    {
        silo.UseRedisClustering(_ => { });
        silo.Services.AddOptions<RedisClusteringOptions>()
            .Configure<IOptions<FlashSaleRedisOptions>, RedisConnection>((clustering, redis, connection) =>
            {
                clustering.ConfigurationOptions = redis.Value.ToConfiguration();
                clustering.CreateMultiplexer = async _ => (await connection.GetMultiplexerAsync(), true);
            });
        return silo;
    }

    private sealed class SchemaLifecycleParticipant(SchemaMigrator migrator, IOptions<FlashSaleMySqlOptions> options)
        : ILifecycleParticipant<ISiloLifecycle>
    {
        public void Participate(ISiloLifecycle lifecycle)
        {
            // Before the storage provider starts (ApplicationServices): it reads its queries once, at start.
            lifecycle.Subscribe<SchemaLifecycleParticipant>(ServiceLifecycleStage.RuntimeInitialize, async ct =>
            {
                if (options.Value.ApplySchema)
                {
                    await migrator.ApplyAsync(ct);
                }
            });
        }
    }

    /// <summary>Hands the process's one multiplexer to the Redis tracing of the service defaults.</summary>
    private sealed class TracedRedis(RedisConnection connection) : IRedisMultiplexerSource
    {
        public async Task<IConnectionMultiplexer> GetMultiplexerAsync() => await connection.GetMultiplexerAsync();
    }
}
