using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using OrleansFlashSale.Messaging;

namespace OrleansFlashSale.Tests;

/// <summary>
/// FlashSale:Nats:DeductionsMaxAge bounds the deductions stream, which otherwise keeps every order ever sold; only that
/// stream ages out, a stream left by an earlier version is updated in place, and a bad age is refused by name.
/// </summary>
public sealed class DeductionsRetentionTests
{
    private static JetStreamOptions Options(TimeSpan? maxAge = null) => new()
    {
        Url = TestStack.Nats,
        User = TestStack.NatsUser,
        Password = TestStack.NatsPassword,
        StreamPrefix = "TAGE" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant(),
        DeductionsMaxAge = maxAge ?? new JetStreamOptions().DeductionsMaxAge,
    };

    [Fact]
    public void Only_the_deductions_stream_ages_out_seven_days_unless_configured()
    {
        var options = new JetStreamOptions { Url = "nats://127.0.0.1:4222" };
        Assert.Equal(TimeSpan.FromDays(7), options.DeductionsMaxAge);

        var topology = new JetStreamTopology(options.StreamPrefix);
        var ages = topology.Streams(options).ToDictionary(s => s.Name!, s => s.MaxAge);
        Assert.Equal(new Dictionary<string, TimeSpan>
        {
            [topology.HalfStream] = TimeSpan.Zero,
            [topology.DeductionsStream] = TimeSpan.FromDays(7),
            [topology.CheckMaxStream] = TimeSpan.Zero,
            [topology.DeadLetterStream] = TimeSpan.Zero,
        }, ages);

        options.DeductionsMaxAge = TimeSpan.Zero;
        Assert.Equal(TimeSpan.Zero, topology.Streams(options).Single(s => s.Name == topology.DeductionsStream).MaxAge);
    }

    [Fact]
    public async Task A_deductions_stream_without_an_age_is_given_one_in_place_keeping_its_messages()
    {
        // What the versions before this setting created: the same stream with no age.
        var old = Options(TimeSpan.Zero);
        await using var before = new JetStreamConnection(Microsoft.Extensions.Options.Options.Create(old), NullLoggerFactory.Instance);
        await before.EnsureStreamsAsync(CancellationToken.None);
        var subject = before.Topology.Deductions("sku-1");
        for (var i = 0; i < 3; i++)
        {
            (await before.JetStream.PublishAsync(subject, new byte[] { 1, 2, 3 })).EnsureSuccess();
        }

        var current = Options();
        current.StreamPrefix = old.StreamPrefix;
        await using var after = new JetStreamConnection(Microsoft.Extensions.Options.Options.Create(current), NullLoggerFactory.Instance);
        try
        {
            var wanted = after.Topology.Streams(current).Single(s => s.Name == after.Topology.DeductionsStream);
            var stale = await after.JetStream.GetStreamAsync(wanted.Name!);
            Assert.False(JetStreamConnection.Matches(stale.Info.Config, wanted));

            await after.EnsureStreamsAsync(CancellationToken.None);

            var stream = await after.JetStream.GetStreamAsync(wanted.Name!);
            Assert.Equal(TimeSpan.FromDays(7), stream.Info.Config.MaxAge);
            Assert.True(JetStreamConnection.Matches(stream.Info.Config, wanted));
            Assert.Equal(3L, stream.Info.State.Messages);
            var ack = await after.JetStream.PublishAsync(subject, new byte[] { 4 });
            ack.EnsureSuccess();
            Assert.Equal(4UL, ack.Seq);
        }
        finally
        {
            foreach (var stream in after.Topology.Streams(current))
            {
                await after.JetStream.DeleteStreamAsync(stream.Name!);
            }
        }
    }

    [Fact]
    public async Task The_server_removes_deductions_older_than_the_age_even_unread()
    {
        // Below the validated minimum on purpose, straight through the topology: the point is that the server applies
        // the age the topology gives, also to messages a durable consumer (as the orders writer) has not acknowledged.
        var options = Options(TimeSpan.FromSeconds(2));
        options.DuplicateWindow = TimeSpan.FromSeconds(1);
        await using var nats = new JetStreamConnection(Microsoft.Extensions.Options.Options.Create(options), NullLoggerFactory.Instance);
        var config = nats.Topology.Streams(options).Single(s => s.Name == nats.Topology.DeductionsStream);
        await nats.JetStream.CreateStreamAsync(config);
        try
        {
            await nats.JetStream.CreateOrUpdateConsumerAsync(config.Name!, new ConsumerConfig("writer") { AckPolicy = ConsumerConfigAckPolicy.Explicit });
            (await nats.JetStream.PublishAsync(nats.Topology.Deductions("sku-1"), new byte[] { 1 })).EnsureSuccess();
            (await nats.JetStream.PublishAsync(nats.Topology.Deductions("sku-1"), new byte[] { 2 })).EnsureSuccess();

            var stream = await nats.JetStream.GetStreamAsync(config.Name!);
            Assert.Equal(TimeSpan.FromSeconds(2), stream.Info.Config.MaxAge);
            var clock = Stopwatch.StartNew();
            while (stream.Info.State.Messages > 0 && clock.Elapsed < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(100);
                stream = await nats.JetStream.GetStreamAsync(config.Name!);
            }

            Assert.Equal(0L, stream.Info.State.Messages);
            Assert.Equal(2UL, stream.Info.State.LastSeq);
            var consumer = await nats.JetStream.GetConsumerAsync(config.Name!, "writer");
            Assert.Equal(0UL, consumer.Info.NumPending);
        }
        finally
        {
            await nats.JetStream.DeleteStreamAsync(config.Name!);
        }
    }

    [Theory]
    [InlineData("00:00:00", true)]
    [InlineData("01:00:00", true)]
    [InlineData("7.00:00:00", true)]
    [InlineData("3650.00:00:00", true)]
    [InlineData("00:59:59", false)]
    [InlineData("3651.00:00:00", false)]
    [InlineData("-01:00:00", false)]
    public void An_age_that_would_drop_unwritten_orders_is_refused_naming_the_setting(string age, bool valid)
    {
        var options = new JetStreamOptions { Url = "nats://127.0.0.1:4222", User = "flashsale", Password = "test-password", DeductionsMaxAge = TimeSpan.Parse(age, System.Globalization.CultureInfo.InvariantCulture) };
        var result = new JetStreamOptionsValidator().Validate(null, options);
        Assert.Equal(valid, result.Succeeded);
        if (!valid)
        {
            Assert.Equal(
                $"FlashSale:Nats:DeductionsMaxAge ({options.DeductionsMaxAge}) must be 0 (keep every message) or between 1 hour and 3650 days, " +
                "and longer than DuplicateWindow (00:02:00); a shorter age drops orders the writer has not stored yet.",
                Assert.Single(result.Failures!));
        }
    }

    [Fact]
    public void An_age_not_longer_than_the_duplicate_window_is_refused()
    {
        var options = new JetStreamOptions
        {
            Url = "nats://127.0.0.1:4222",
            User = "flashsale",
            Password = "test-password",
            DuplicateWindow = TimeSpan.FromHours(2),
            DeductionsMaxAge = TimeSpan.FromHours(2),
        };
        var result = new JetStreamOptionsValidator().Validate(null, options);
        Assert.Contains(result.Failures!, f => f.StartsWith("FlashSale:Nats:DeductionsMaxAge (02:00:00) must be", StringComparison.Ordinal));
        options.DeductionsMaxAge = TimeSpan.FromHours(3);
        Assert.True(new JetStreamOptionsValidator().Validate(null, options).Succeeded);
    }
}
