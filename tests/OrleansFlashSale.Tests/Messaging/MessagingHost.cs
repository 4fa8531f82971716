using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using OrleansFlashSale.Grains;
using OrleansFlashSale.Messaging;

namespace OrleansFlashSale.Tests.Messaging;

/// <summary>
/// A host with the messaging services (producer, check-back) on the real NATS server under a stream prefix of its own,
/// with its logs and metrics recorded. No Orleans cluster.
/// </summary>
internal sealed class MessagingHost : IAsyncDisposable
{
    private readonly IHost _host;
    private bool _stopped;

    private MessagingHost(IHost host, MetricRecorder metrics, LogRecorder logs)
    {
        _host = host;
        Metrics = metrics;
        Logs = logs;
    }

    public IServiceProvider Services => _host.Services;

    public ITransactionalProducer Producer => Services.GetRequiredService<ITransactionalProducer>();

    public JetStreamConnection Nats => Services.GetRequiredService<JetStreamConnection>();

    public JetStreamTopology Topology => Nats.Topology;

    public INatsJSContext JetStream => Nats.JetStream;

    public TransactionCheckService CheckService => Services.GetServices<IHostedService>().OfType<TransactionCheckService>().Single();

    public MetricRecorder Metrics { get; }

    public LogRecorder Logs { get; }

    /// <summary>A stream prefix no other test uses, so that no test sees another's messages.</summary>
    public static string NewPrefix(string tag) => $"{tag}{Guid.NewGuid():N}"[..20].ToUpperInvariant();

    /// <summary>
    /// Short timings: checks every 200 ms after a 1 s timeout unless a test says otherwise. The timeout is also the ack
    /// wait, so it leaves room for a loaded machine to finish a check before the server hands it to someone else.
    /// </summary>
    public static async Task<MessagingHost> StartAsync(
        string prefix,
        ITransactionChecker checker,
        TimeSpan? transactionTimeout = null,
        int maxChecks = 3)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["FlashSale:Nats:Url"] = TestStack.Nats,
            ["FlashSale:Nats:User"] = TestStack.NatsUser,
            ["FlashSale:Nats:Password"] = TestStack.NatsPassword,
            ["FlashSale:Nats:StreamPrefix"] = prefix,
            ["FlashSale:Nats:TransactionTimeout"] = (transactionTimeout ?? TimeSpan.FromSeconds(1)).ToString("c", CultureInfo.InvariantCulture),
            ["FlashSale:Nats:CheckInterval"] = "00:00:00.200",
            ["FlashSale:Nats:MaxChecks"] = maxChecks.ToString(CultureInfo.InvariantCulture),
            ["FlashSale:Nats:DuplicateWindow"] = "00:05:00",
        });
        var logs = new LogRecorder();
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Debug);
        builder.Logging.AddFilter("NATS", LogLevel.Information);
        builder.Logging.AddProvider(logs);
        builder.Services.AddSingleton(checker);
        builder.Services.AddFlashSaleMessaging(builder.Configuration);
        var host = builder.Build();
        var metrics = new MetricRecorder(host.Services.GetRequiredService<IMeterFactory>());
        await host.StartAsync();
        return new MessagingHost(host, metrics, logs);
    }

    public async Task StopAsync()
    {
        if (!_stopped)
        {
            _stopped = true;
            await _host.StopAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _host.Dispose();
        Metrics.Dispose();
    }

    public async Task<long> CountAsync(string stream) =>
        (await JetStream.GetStreamAsync(stream)).Info.State.Messages;

    /// <summary>
    /// What a consumer of <paramref name="stream"/> receives: publishes a marker last, then reads with a new durable
    /// consumer (acking each message) up to the marker, so no wait is needed to know that nothing else is coming.
    /// </summary>
    public async Task<List<Received>> ReadUntilMarkerAsync(string stream, string markerSubject)
    {
        var markerId = "marker-" + Guid.NewGuid().ToString("N");
        var ack = await JetStream.PublishAsync(markerSubject, "marker"u8.ToArray(), opts: new NatsJSPubOpts { MsgId = markerId });
        Assert.Null(ack.Error);
        var name = "probe-" + markerId[^12..];
        var consumer = await JetStream.CreateOrUpdateConsumerAsync(stream, new ConsumerConfig(name)
        {
            DurableName = name,
            AckPolicy = ConsumerConfigAckPolicy.Explicit,
            DeliverPolicy = ConsumerConfigDeliverPolicy.All,
        });
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var received = new List<Received>();
        await foreach (var message in consumer.ConsumeAsync<byte[]>(cancellationToken: deadline.Token))
        {
            await message.AckAsync(cancellationToken: deadline.Token);
            var entry = new Received(
                message.Subject,
                Header(message.Headers, TransactionHeaders.MessageId),
                Header(message.Headers, TransactionHeaders.TransactionId),
                message.Data ?? [],
                message.Headers);
            if (entry.MessageId == markerId)
            {
                break;
            }

            received.Add(entry);
        }

        await JetStream.DeleteConsumerAsync(stream, name);
        return received;
    }

    public static string? Header(NatsHeaders? headers, string name) =>
        headers is not null && headers.TryGetLastValue(name, out var value) ? value : null;

    /// <summary>Polls until <paramref name="condition"/> holds; fails with the host's log after 30 s.</summary>
    public async Task EventuallyAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Not within 30 s: {what}. Log:\n{Logs.Dump()}");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>Removes the streams of a prefix (each test's own) from the shared server.</summary>
    public static async Task DeleteStreamsAsync(string prefix)
    {
        await using var connection = new NatsConnection(TestStack.NatsOpts);
        var js = new NatsJSContext(connection);
        var names = new List<string>();
        await foreach (var name in js.ListStreamNamesAsync())
        {
            if (name.StartsWith(prefix + "_", StringComparison.Ordinal))
            {
                names.Add(name);
            }
        }

        foreach (var name in names)
        {
            await js.DeleteStreamAsync(name);
        }
    }
}

internal sealed record Received(string Subject, string? MessageId, string? TransactionId, byte[] Payload, NatsHeaders? Headers)
{
    public string? Header(string name) => MessagingHost.Header(Headers, name);
}

/// <summary>A checker answering from a script, recording each call and whether two checks of one transaction overlapped.</summary>
internal sealed class ScriptedChecker(Func<HalfMessage, TransactionCheckResult> answer) : ITransactionChecker
{
    private readonly ConcurrentDictionary<string, byte> _running = new();
    private int _overlaps;

    public ConcurrentQueue<HalfMessage> Calls { get; } = new();

    public int Overlaps => Volatile.Read(ref _overlaps);

    public Func<HalfMessage, CancellationToken, Task>? Before { get; init; }

    public async Task<TransactionCheckResult> CheckAsync(HalfMessage half, CancellationToken ct)
    {
        Calls.Enqueue(half);
        if (!_running.TryAdd(half.TransactionId, 0))
        {
            Interlocked.Increment(ref _overlaps);
        }

        try
        {
            if (Before is not null)
            {
                await Before(half, ct);
            }

            await Task.Yield();
            return answer(half);
        }
        finally
        {
            _running.TryRemove(half.TransactionId, out _);
        }
    }
}

/// <summary>Long measurements of the project's meter, only from one host's meter factory.</summary>
internal sealed class MetricRecorder : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentQueue<(string Instrument, long Value, KeyValuePair<string, object?>[] Tags)> _measurements = new();

    public MetricRecorder(IMeterFactory scope)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter.Scope, scope) && instrument.Meter.Name == FlashSaleMeter.Name)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
            _measurements.Enqueue((instrument.Name, value, tags.ToArray())));
        _listener.Start();
    }

    public long Sum(string instrument, string tag, string value) => _measurements
        .Where(m => m.Instrument == instrument && m.Tags.Any(t => t.Key == tag && Equals(t.Value, value)))
        .Sum(m => m.Value);

    public void Dispose() => _listener.Dispose();
}

internal sealed class LogRecorder : ILoggerProvider
{
    public ConcurrentQueue<(LogLevel Level, EventId Event, string Category, string Message)> Entries { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public string Dump() => string.Join("\n", Entries.Select(e => $"{e.Level} {e.Category} [{e.Event.Id}] {e.Message}"));

    public void Dispose()
    {
    }

    private sealed class Logger(LogRecorder recorder, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            recorder.Entries.Enqueue((logLevel, eventId, category, formatter(state, exception) + (exception is null ? "" : " | " + exception.GetType().Name + ": " + exception.Message)));
    }
}
