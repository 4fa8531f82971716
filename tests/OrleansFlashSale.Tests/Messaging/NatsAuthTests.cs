using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using NATS.Client.Core;
using NATS.Client.JetStream;
using OrleansFlashSale.Messaging;

namespace OrleansFlashSale.Tests.Messaging;

/// <summary>
/// The local stack's NATS server refuses clients without its credentials: whoever can publish to it adds orders that
/// the writer stores. The silos' own connection (JetStreamConnection, with FlashSale:Nats:User and Password) gets in.
/// </summary>
public sealed class NatsAuthTests : IAsyncLifetime
{
    private readonly string _prefix = MessagingHost.NewPrefix("TAUTH");

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => MessagingHost.DeleteStreamsAsync(_prefix);

    [Fact]
    public async Task A_client_without_credentials_is_refused()
    {
        await AssertRefusedAsync(new NatsOpts { Url = TestStack.Nats });
    }

    [Fact]
    public async Task A_client_with_a_wrong_password_is_refused()
    {
        await AssertRefusedAsync(new NatsOpts { Url = TestStack.Nats, AuthOpts = new NatsAuthOpts { Username = TestStack.NatsUser, Password = "not-the-password" } });
    }

    [Fact]
    public async Task The_configured_credentials_create_the_streams_and_publish_an_order_message()
    {
        var options = TestStack.JetStreamOptions();
        options.StreamPrefix = _prefix;
        Assert.True(new JetStreamOptionsValidator().Validate(null, options).Succeeded);
        await using var nats = new JetStreamConnection(Microsoft.Extensions.Options.Options.Create(options), NullLoggerFactory.Instance);
        await nats.EnsureStreamsAsync(CancellationToken.None);

        var ack = await nats.JetStream.PublishAsync(nats.Topology.Deductions("sku-auth"), Encoding.UTF8.GetBytes("order"));
        ack.EnsureSuccess();
        Assert.Equal(nats.Topology.DeductionsStream, ack.Stream);
    }

    /// <summary>Connecting fails with the server's "Authorization Violation"; so would any publish (it connects first).</summary>
    private async Task AssertRefusedAsync(NatsOpts opts)
    {
        await using var connection = new NatsConnection(opts);
        var subject = new JetStreamTopology(_prefix).Deductions("sku-auth");
        var error = await Assert.ThrowsAnyAsync<NatsException>(async () => await connection.PublishAsync(subject, "order"));
        Assert.Contains("Authorization Violation", error.ToString(), StringComparison.OrdinalIgnoreCase);
        Assert.NotEqual(NatsConnectionState.Open, connection.ConnectionState);
    }
}
