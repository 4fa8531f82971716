using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using OrleansFlashSale.Persistence;
using OrleansFlashSale.Redis;

namespace OrleansFlashSale.Silo;

/// <summary>Ready only when Redis answers a PING.</summary>
internal sealed class RedisHealthCheck(RedisConnection redis) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            var db = await redis.GetDatabaseAsync();
            var latency = await db.PingAsync();
            return HealthCheckResult.Healthy($"PING {latency.TotalMilliseconds:F1} ms");
        }
        catch (Exception ex)
        {
            return HealthCheckResult.Unhealthy("Redis does not answer", ex);
        }
    }
}

/// <summary>Ready only when MySQL answers a trivial query.</summary>
internal sealed class MySqlHealthCheck(IOptions<FlashSaleMySqlOptions> options) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await MySqlTransactions.PingAsync(options.Value.ConnectionString, cancellationToken);
            return HealthCheckResult.Healthy();
        }
        catch (Exception ex)
        {
            return HealthCheckResult.Unhealthy("MySQL does not answer", ex);
        }
    }
}
