using System.Net.Sockets;
using OrleansFlashSale.Redis;
using StackExchange.Redis;

namespace OrleansFlashSale.Tests;

/// <summary>
/// <see cref="RedisScripts.CertainlyNotRun"/> against what the real Redis client and server do: a script the client
/// never wrote is known not to have run; one that was written and not answered, or that failed while running, is not.
/// A bucket trusts this to commit a transaction without the check-back, so a wrong "not run" would lose orders.
/// </summary>
public sealed class ScriptFailureTests
{
    private static readonly RedisScript Script = new("probe", "redis.call('INCR', KEYS[1]) return 1");

    [Fact]
    public async Task A_script_sent_while_Redis_cannot_be_reached_times_out_unsent_and_certainly_did_not_run()
    {
        // A port nobody listens on: the client keeps the command in its backlog, then fails it unsent.
        int port;
        using (var probe = new TcpListener(System.Net.IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
        }

        var options = ConfigurationOptions.Parse($"127.0.0.1:{port}");
        options.AbortOnConnectFail = false;
        options.AsyncTimeout = 300;
        await using var redis = await ConnectionMultiplexer.ConnectAsync(options);

        var failure = await Assert.ThrowsAnyAsync<Exception>(() =>
            RedisScripts.EvaluateAsync(redis.GetDatabase(), Script, ["fs-probe"], []));

        var connection = Assert.IsType<RedisConnectionException>(failure);
        Assert.Equal(CommandStatus.WaitingInBacklog, connection.CommandStatus);
        Assert.True(RedisScripts.CertainlyNotRun(failure));
    }

    [Fact]
    public async Task A_script_written_to_Redis_but_not_answered_in_time_may_have_run()
    {
        await using var proxy = HoldingProxy.StartForRedis();
        var options = proxy.RedisOptions();
        options.AsyncTimeout = 300;
        await using var redis = await ConnectionMultiplexer.ConnectAsync(options);
        var key = ClusterFixture.NewSku("probe-held");

        proxy.Hold();
        var failure = await Assert.ThrowsAnyAsync<Exception>(() =>
            RedisScripts.EvaluateAsync(redis.GetDatabase(), Script, [key], []));
        proxy.Release();

        Assert.Equal(CommandStatus.Sent, Assert.IsType<RedisTimeoutException>(failure).Commandstatus);
        Assert.False(RedisScripts.CertainlyNotRun(failure));
    }

    [Fact]
    public async Task A_script_that_fails_while_running_may_have_written_before_failing()
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(TestStack.Redis);
        var failing = new RedisScript("probe-error", "redis.call('INCR', KEYS[1]) return redis.error_reply('after a write')");

        var failure = await Assert.ThrowsAsync<RedisServerException>(() =>
            RedisScripts.EvaluateAsync(redis.GetDatabase(), failing, [ClusterFixture.NewSku("probe-error")], []));

        Assert.False(RedisScripts.CertainlyNotRun(failure));
    }

    [Fact]
    public void A_server_still_loading_its_data_refused_the_script()
    {
        Assert.True(RedisScripts.CertainlyNotRun(new RedisServerException(RedisErrorKind.Loading, CommandFlags.None, "LOADING Redis is loading the dataset in memory")));
        Assert.True(RedisScripts.CertainlyNotRun(new RedisServerException(RedisErrorKind.Unknown, CommandFlags.None, "LOADING Redis is loading the dataset in memory")));
        Assert.False(RedisScripts.CertainlyNotRun(new RedisServerException(RedisErrorKind.UnknownError, CommandFlags.None, "ERR Error running script")));
        Assert.False(RedisScripts.CertainlyNotRun(new InvalidOperationException("LOADING")));
    }
}
