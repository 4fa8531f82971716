using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace OrleansFlashSale.Grains.Pipeline;

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
public sealed partial class OrderExpiryService(IGrainFactory grains, IOptions<OrderExpiryOptions> options, ILogger<OrderExpiryService> logger)
    : BackgroundService
{
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
                    var expired = await grains.GetGrain<IOrdersGrain>(0).ExpireDueAsync(null, 500);
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

    [LoggerMessage(EventId = 5002, Level = LogLevel.Information, Message = "Expired {Count} unpaid orders and returned their units")]
    private static partial void LogExpired(ILogger logger, int count);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Warning, Message = "Expiry sweep failed; the next one retries")]
    private static partial void LogSweepFailed(ILogger logger, Exception exception);
}
