using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace OrleansFlashSale.Messaging;

/// <summary>
/// The one NATS connection of the process (it multiplexes every publisher and consumer), its JetStream context, and
/// the streams, created on first use.
/// </summary>
public sealed class JetStreamConnection : IAsyncDisposable
{
    private readonly NatsConnection _connection;
    private readonly SemaphoreSlim _streamsLock = new(1, 1);
    private volatile bool _streamsReady;

    public JetStreamConnection(IOptions<JetStreamOptions> options, ILoggerFactory loggerFactory)
    {
        Options = options.Value;
        Topology = new JetStreamTopology(Options.StreamPrefix);
        _connection = new NatsConnection(new NatsOpts
        {
            Url = Options.Url,
            AuthOpts = Options.ToAuthOpts(),
            Name = "orleans-flashsale",
            LoggerFactory = loggerFactory,
        });
        JetStream = new NatsJSContext(_connection);
    }

    public JetStreamOptions Options { get; }

    public JetStreamTopology Topology { get; }

    public INatsConnection Connection => _connection;

    public INatsJSContext JetStream { get; }

    /// <summary>
    /// Creates the streams, or updates them to the configured settings, once per process; a failure is retried by the
    /// next call. Idempotent, and safe when several processes start at once.
    /// </summary>
    public async ValueTask EnsureStreamsAsync(CancellationToken ct)
    {
        if (_streamsReady)
        {
            return;
        }

        await _streamsLock.WaitAsync(ct);
        try
        {
            if (!_streamsReady)
            {
                foreach (var stream in Topology.Streams(Options))
                {
                    await EnsureStreamAsync(stream, ct);
                }

                _streamsReady = true;
            }
        }
        finally
        {
            _streamsLock.Release();
        }
    }

    /// <remarks>
    /// A stream that already has these settings is left alone: every silo, and every test cluster in one process,
    /// ensures the streams when it starts, and nats-server 2.9.10 crashed (a nil dereference in its stream update
    /// handler) on one of those simultaneous updates of unchanged streams in a test run.
    /// </remarks>
    private async ValueTask EnsureStreamAsync(StreamConfig wanted, CancellationToken ct)
    {
        try
        {
            var existing = await JetStream.GetStreamAsync(wanted.Name!, cancellationToken: ct);
            if (Matches(existing.Info.Config, wanted))
            {
                return;
            }
        }
        catch (NatsJSApiException ex) when (ex.Error.Code == 404)
        {
            // Not there yet: created below.
        }

        // Create-or-update rather than create: create fails on a stream whose settings changed (error 10058).
        await JetStream.CreateOrUpdateStreamAsync(wanted, ct);
    }

    /// <summary>Whether <paramref name="actual"/> has every setting the topology gives a stream.</summary>
    internal static bool Matches(StreamConfig actual, StreamConfig wanted) =>
        actual.Name == wanted.Name
        && (actual.Subjects ?? []).SequenceEqual(wanted.Subjects ?? [])
        && actual.Description == wanted.Description
        && actual.Storage == wanted.Storage
        && actual.Retention == wanted.Retention
        && actual.NumReplicas == wanted.NumReplicas
        && actual.DuplicateWindow == wanted.DuplicateWindow
        && actual.MaxAge == wanted.MaxAge;

    public async ValueTask DisposeAsync()
    {
        await _connection.DisposeAsync();
        _streamsLock.Dispose();
    }
}
