using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using OrleansFlashSale.Grains.Messaging;

namespace OrleansFlashSale.Grains.Pipeline;

/// <summary>
/// Keeps the deductions stream from growing without bound. The stream keeps every message (limits retention, no age
/// or size limit), because none may go before the order writer has its orders in MySQL; so what every consumer of the
/// stream has acknowledged is purged now and then. Below the lowest acknowledgement floor of all the stream's
/// consumers nothing is wanted any more; a stream without consumers is left whole (the writer has not started yet).
/// </summary>
/// <remarks>
/// <para>Work-queue or interest retention would remove acknowledged messages by itself, but NATS cannot change the
/// retention of an existing stream, and an interest stream drops what arrives while it has no consumer at all.</para>
/// <para>Runs in every silo: a purge below a floor that another silo already purged to removes nothing.</para>
/// </remarks>
public sealed partial class DeductionsTrimService : BackgroundService
{
    private readonly JetStreamConnection _nats;
    private readonly TimeProvider _time;
    private readonly ILogger<DeductionsTrimService> _logger;

    public DeductionsTrimService(JetStreamConnection nats, ILogger<DeductionsTrimService> logger)
        : this(nats, TimeProvider.System, logger)
    {
    }

    internal DeductionsTrimService(JetStreamConnection nats, TimeProvider time, ILogger<DeductionsTrimService> logger)
    {
        _nats = nats;
        _time = time;
        _logger = logger;
    }

    /// <summary>
    /// Purges the deductions every consumer of the stream has acknowledged; returns how many messages went. Zero when
    /// the stream has no consumer, or when one of them has acknowledged nothing yet.
    /// </summary>
    public async Task<long> TrimAsync(CancellationToken cancellationToken)
    {
        var stream = _nats.Topology.DeductionsStream;
        ulong? floor = null;
        await foreach (var consumer in _nats.JetStream.ListConsumersAsync(stream, cancellationToken))
        {
            var acknowledged = consumer.Info.AckFloor?.StreamSeq ?? 0;
            floor = floor is { } lowest ? Math.Min(lowest, acknowledged) : acknowledged;
        }

        if (floor is not { } through || through == 0)
        {
            return 0;
        }

        // Seq is exclusive: every message up to and including the floor goes.
        var response = await _nats.JetStream.PurgeStreamAsync(stream, new StreamPurgeRequest { Seq = through + 1 }, cancellationToken);
        if (response.Purged > 0)
        {
            LogTrimmed(_logger, response.Purged, stream, through);
        }

        return response.Purged;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = _nats.Options.TrimInterval;
        if (interval <= TimeSpan.Zero)
        {
            return;
        }

        using var timer = new PeriodicTimer(interval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await TrimAsync(stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // Nothing is lost by a trim that did not happen: the next one purges up to the floor then.
                    LogTrimFailed(_logger, ex, _nats.Topology.DeductionsStream, interval);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Shutting down.
        }
    }

    [LoggerMessage(EventId = 4020, Level = LogLevel.Debug, Message = "Purged {Count} acknowledged messages from {Stream} (through sequence {Floor})")]
    private static partial void LogTrimmed(ILogger logger, long count, string stream, ulong floor);

    [LoggerMessage(EventId = 4021, Level = LogLevel.Warning, Message = "Purging acknowledged messages from {Stream} failed; retrying in {Interval}")]
    private static partial void LogTrimFailed(ILogger logger, Exception exception, string stream, TimeSpan interval);
}
