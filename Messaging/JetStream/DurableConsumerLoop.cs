using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace OrleansFlashSale.Messaging;

/// <summary>How one attachment of a durable consumer ended, and so how soon <see cref="DurableConsumerLoop"/> attaches again.</summary>
public enum ConsumerRunEnd
{
    /// <summary>The work let go of the consumer on purpose (to read it another way): attach again at once.</summary>
    Reattach,

    /// <summary>
    /// The reading ended by itself (the consumer was deleted under it, say): attach again after a pause, so a reading
    /// that keeps ending at once cannot spin.
    /// </summary>
    Ended,
}

/// <summary>
/// Keeps a hosted service on its durable JetStream consumer until shutdown: ensures the streams, creates or updates
/// the consumer (the server keeps its position, so every process that runs the service shares it), hands it to the
/// service's work, and after a failure attaches again after a delay that doubles up to the service's ceiling.
/// </summary>
/// <remarks>
/// The service logs attachments and failures itself (<paramref name="attached"/>, <paramref name="failed"/>), so each
/// keeps its own log events and metrics. Shutdown (the stopping token) ends the loop quietly wherever it is.
/// </remarks>
/// <param name="stream">The stream the consumer reads.</param>
/// <param name="config">The consumer's settings, asked for at every attachment.</param>
/// <param name="maxRetryDelay">The longest wait between failed attempts.</param>
/// <param name="attached">Called each time the consumer is attached, before the work gets it.</param>
/// <param name="failed">Called after a failure with the wait before the next attempt.</param>
public sealed class DurableConsumerLoop(
    JetStreamConnection nats,
    string stream,
    Func<ConsumerConfig> config,
    TimeSpan maxRetryDelay,
    Action attached,
    Action<Exception, TimeSpan> failed)
{
    /// <summary>The first wait after a failure, and the pause after a reading that ended by itself.</summary>
    public static readonly TimeSpan FirstRetryDelay = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// Runs until <paramref name="stoppingToken"/> is cancelled. <paramref name="work"/> reads the attached consumer
    /// and returns when it lets go of it; whatever it throws (but the stop) is a failure.
    /// </summary>
    public async Task RunAsync(Func<INatsJSConsumer, CancellationToken, Task<ConsumerRunEnd>> work, CancellationToken stoppingToken)
    {
        var delay = FirstRetryDelay;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await nats.EnsureStreamsAsync(stoppingToken);
                var consumer = await nats.JetStream.CreateOrUpdateConsumerAsync(stream, config(), stoppingToken);
                attached();
                delay = FirstRetryDelay;
                if (await work(consumer, stoppingToken) == ConsumerRunEnd.Ended)
                {
                    await Task.Delay(delay, stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                failed(ex, delay);
                try
                {
                    await Task.Delay(delay, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, maxRetryDelay.Ticks));
            }
        }
    }
}
