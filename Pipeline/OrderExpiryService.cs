using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansFlashSale.Persistence;

namespace OrleansFlashSale.Pipeline;

public sealed class OrderExpiryOptions
{
    public const string Section = "FlashSale:Orders";

    /// <summary>How often each silo looks for unpaid orders past their deadline (and unfinished stock returns); 0 turns the sweep off.</summary>
    public int ExpirySweepSeconds { get; set; } = 5;
}

/// <summary>
/// Expires unpaid orders. It runs in every silo and needs no reminder per order: the rows and their deadlines are in
/// MySQL, so a silo restart loses nothing, and the conditional UPDATE lets only one silo expire a given order.
/// </summary>
public sealed partial class OrderExpiryService(IGrainFactory grains, IOrderLifecycleStore store, IOptions<OrderExpiryOptions> options,
    ILogger<OrderExpiryService> logger) : BackgroundService
{
    /// <summary>Due orders one sale's sweep takes at most (and unfinished returns it retries).</summary>
    public const int OrdersPerSale = 500;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.Value.ExpirySweepSeconds <= 0)
        {
            return;
        }

        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(Math.Max(1, options.Value.ExpirySweepSeconds)));
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    var expired = await SweepAsync(await store.ListSalesAsync(), stoppingToken);
                    if (expired > 0)
                    {
                        LogExpired(logger, expired);
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogSweepFailed(logger, ex);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Shutting down.
        }
    }

    /// <summary>
    /// Sweeps <paramref name="skus"/> one sale at a time. A sale whose sweep fails (its product grain cannot answer,
    /// its Redis keys are damaged) is logged and tried again next time; the sales after it are still swept.
    /// </summary>
    public async Task<int> SweepAsync(IReadOnlyList<string> skus, CancellationToken cancellationToken)
    {
        var expired = 0;
        foreach (var sku in skus)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                expired += await grains.GetGrain<IOrdersGrain>(0).ExpireDueAsync(sku, OrdersPerSale);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogSaleSweepFailed(logger, ex, sku);
            }
        }

        return expired;
    }

    [LoggerMessage(EventId = 5002, Level = LogLevel.Information, Message = "Expired {Count} unpaid orders and returned their units")]
    private static partial void LogExpired(ILogger logger, int count);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Warning, Message = "Expiry sweep failed; the next one retries")]
    private static partial void LogSweepFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 5022, Level = LogLevel.Error, Message = "Expiry sweep of sale {Sku} failed; the other sales are still swept, and the next sweep tries this one again")]
    private static partial void LogSaleSweepFailed(ILogger logger, Exception exception, string sku);
}
