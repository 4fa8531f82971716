using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using OrleansFlashSale.Grains.Messaging;
using OrleansFlashSale.Grains.Pipeline;

namespace OrleansFlashSale.Tests.Messaging;

/// <summary>
/// The deductions stream keeps every message until all of its consumers have acknowledged it, and then lets it go, on
/// the real JetStream server.
/// </summary>
public sealed class DeductionsTrimTests : IAsyncLifetime
{
    private readonly string _prefix = MessagingHost.NewPrefix("TRIM");
    private JetStreamConnection _nats = null!;

    private string Stream => _nats.Topology.DeductionsStream;

    public async Task InitializeAsync()
    {
        var options = new JetStreamOptions { Url = TestStack.Nats, StreamPrefix = _prefix, DuplicateWindow = TimeSpan.FromMinutes(5) };
        _nats = new JetStreamConnection(Microsoft.Extensions.Options.Options.Create(options), NullLoggerFactory.Instance);
        await _nats.EnsureStreamsAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await MessagingHost.DeleteStreamsAsync(_prefix);
        await _nats.DisposeAsync();
    }

    [Fact]
    public async Task Only_what_every_consumer_acknowledged_is_purged()
    {
        var trim = new DeductionsTrimService(_nats, NullLogger<DeductionsTrimService>.Instance);
        await PublishAsync(0, 10);

        // No consumer yet: the writer has not started, so every message is still wanted.
        Assert.Equal(0, await trim.TrimAsync(CancellationToken.None));
        Assert.Equal(10, await CountAsync());

        var writer = await ConsumerAsync("writer");
        var slow = await ConsumerAsync("slow");
        Assert.Equal(["d-0", "d-1", "d-2", "d-3", "d-4", "d-5"], await AckAsync(writer, 6));
        // One consumer has acknowledged nothing: nothing goes.
        Assert.Equal(0, await trim.TrimAsync(CancellationToken.None));
        Assert.Equal(10, await CountAsync());

        Assert.Equal(["d-0", "d-1", "d-2"], await AckAsync(slow, 3));
        Assert.Equal(3, await trim.TrimAsync(CancellationToken.None));
        Assert.Equal((7L, 4UL), await StateAsync());

        // The slow consumer catches up; the writer is now the lowest.
        Assert.Equal(["d-3", "d-4", "d-5", "d-6", "d-7", "d-8", "d-9"], await AckAsync(slow, 7));
        Assert.Equal(3, await trim.TrimAsync(CancellationToken.None));
        Assert.Equal((4L, 7UL), await StateAsync());
        // Again: nothing new acknowledged, nothing more goes.
        Assert.Equal(0, await trim.TrimAsync(CancellationToken.None));

        // The writer still gets every message it has not acknowledged, in order.
        Assert.Equal(["d-6", "d-7", "d-8", "d-9"], await AckAsync(writer, 4));
        Assert.Equal(4, await trim.TrimAsync(CancellationToken.None));
        Assert.Equal(0, await CountAsync());

        // A purged message's id is still remembered inside the duplicate window: a check-back's late copy is dropped.
        var again = await _nats.JetStream.PublishAsync(_nats.Topology.Deductions("sku"), "copy"u8.ToArray(), opts: new NatsJSPubOpts { MsgId = "d-3" });
        Assert.Null(again.Error);
        Assert.True(again.Duplicate);
        Assert.Equal(0, await CountAsync());
    }

    [Fact]
    public async Task The_service_trims_once_per_interval()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var trim = new DeductionsTrimService(_nats, time, NullLogger<DeductionsTrimService>.Instance);
        await PublishAsync(0, 5);
        var writer = await ConsumerAsync("writer");
        Assert.Equal(5, (await AckAsync(writer, 5)).Count);

        await trim.StartAsync(CancellationToken.None);
        try
        {
            // Not before the interval has passed.
            Assert.Equal(5, await CountAsync());
            time.Advance(_nats.Options.TrimInterval);
            await EventuallyAsync(async () => await CountAsync() == 0);
        }
        finally
        {
            await trim.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public void The_interval_is_a_minute_unless_configured_and_zero_turns_it_off()
    {
        Assert.Equal(TimeSpan.FromMinutes(1), new JetStreamOptions().TrimInterval);
        var validator = new JetStreamOptionsValidator();
        Assert.True(validator.Validate(null, new JetStreamOptions { Url = "nats://127.0.0.1:4222", TrimInterval = TimeSpan.Zero }).Succeeded);
        var result = validator.Validate(null, new JetStreamOptions { Url = "nats://127.0.0.1:4222", TrimInterval = TimeSpan.FromMilliseconds(10) });
        Assert.True(result.Failed);
        Assert.Contains("FlashSale:Nats:TrimInterval must be 0 (off) or between 1 second and 1 day, got 00:00:00.0100000.", result.Failures!);
    }

    private async Task PublishAsync(int from, int count)
    {
        for (var i = from; i < from + count; i++)
        {
            var ack = await _nats.JetStream.PublishAsync(_nats.Topology.Deductions("sku"), "order"u8.ToArray(), opts: new NatsJSPubOpts { MsgId = $"d-{i}" });
            ack.EnsureSuccess();
        }
    }

    private Task<INatsJSConsumer> ConsumerAsync(string name) =>
        _nats.JetStream.CreateOrUpdateConsumerAsync(Stream, new ConsumerConfig(name)
        {
            DurableName = name,
            AckPolicy = ConsumerConfigAckPolicy.Explicit,
            DeliverPolicy = ConsumerConfigDeliverPolicy.All,
        }).AsTask();

    /// <summary>Fetches <paramref name="count"/> messages and acknowledges each, waiting for the server to confirm.</summary>
    private static async Task<List<string>> AckAsync(INatsJSConsumer consumer, int count)
    {
        var ids = new List<string>();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (ids.Count < count)
        {
            await foreach (var message in consumer.FetchAsync<byte[]>(new NatsJSFetchOpts { MaxMsgs = count - ids.Count, Expires = TimeSpan.FromSeconds(5) }, cancellationToken: deadline.Token))
            {
                await message.AckAsync(new AckOpts { DoubleAck = true }, deadline.Token);
                ids.Add(MessagingHost.Header(message.Headers, "Nats-Msg-Id") ?? "?");
            }
        }

        return ids;
    }

    private async Task<long> CountAsync() => (await StateAsync()).Messages;

    private async Task<(long Messages, ulong FirstSeq)> StateAsync()
    {
        var stream = await _nats.JetStream.GetStreamAsync(Stream);
        return (stream.Info.State.Messages, stream.Info.State.FirstSeq);
    }

    private static async Task EventuallyAsync(Func<Task<bool>> condition)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!await condition())
        {
            await Task.Delay(50, deadline.Token);
        }
    }
}
