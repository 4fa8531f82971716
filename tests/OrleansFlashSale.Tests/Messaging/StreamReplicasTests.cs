using Microsoft.Extensions.Logging.Abstractions;
using OrleansFlashSale.Messaging;

namespace OrleansFlashSale.Tests;

/// <summary>FlashSale:Nats:Replicas decides the replica count of every stream; a count JetStream cannot have is refused by name.</summary>
public sealed class StreamReplicasTests
{
    [Fact]
    public void One_replica_unless_configured() => Assert.Equal(1, new JetStreamOptions().Replicas);

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(5)]
    public void Every_stream_is_created_with_the_configured_replicas(int replicas)
    {
        var options = new JetStreamOptions { Url = "nats://127.0.0.1:4222", User = "flashsale", Password = "test-password", Replicas = replicas };
        Assert.True(new JetStreamOptionsValidator().Validate(null, options).Succeeded);

        var streams = new JetStreamTopology(options.StreamPrefix).Streams(options).ToList();
        Assert.Equal(4, streams.Count);
        Assert.All(streams, s => Assert.Equal(replicas, s.NumReplicas));
    }

    [Fact]
    public async Task Streams_the_server_already_has_as_configured_are_recognised_and_left_alone()
    {
        // Each start ensures the streams; only a stream whose settings differ may be sent an update.
        var options = TestStack.JetStreamOptions();
        options.StreamPrefix = "TSAME" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        await using var nats = new JetStreamConnection(Microsoft.Extensions.Options.Options.Create(options), NullLoggerFactory.Instance);
        await nats.EnsureStreamsAsync(CancellationToken.None);

        foreach (var wanted in nats.Topology.Streams(options))
        {
            var stream = await nats.JetStream.GetStreamAsync(wanted.Name!);
            try
            {
                Assert.True(JetStreamConnection.Matches(stream.Info.Config, wanted), wanted.Name);
                Assert.False(JetStreamConnection.Matches(stream.Info.Config, wanted with { NumReplicas = 3 }), wanted.Name);
                Assert.False(JetStreamConnection.Matches(stream.Info.Config, wanted with { DuplicateWindow = TimeSpan.FromSeconds(1) }), wanted.Name);
            }
            finally
            {
                await nats.JetStream.DeleteStreamAsync(wanted.Name!);
            }
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(6)]
    [InlineData(-1)]
    public void A_replica_count_outside_1_to_5_is_refused_naming_the_setting(int replicas)
    {
        var result = new JetStreamOptionsValidator().Validate(null, new JetStreamOptions { Url = "nats://127.0.0.1:4222", User = "flashsale", Password = "test-password", Replicas = replicas });
        Assert.True(result.Failed);
        Assert.Contains("FlashSale:Nats:Replicas must be between 1 and 5.", result.Failures!);
    }
}
