using System.Net;
using System.Net.Sockets;
using StackExchange.Redis;

namespace OrleansFlashSale.Tests;

/// <summary>
/// A TCP proxy on loopback in front of a real server that can hold what clients send: while held, bytes from the
/// clients stay in the proxy (as in a network that stalls, or a command queued behind a slow failover) and reach the
/// server, in order, once released. Answers from the server always pass.
/// </summary>
public sealed class HoldingProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly DnsEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<TcpClient> _clients = [];
    private TaskCompletionSource _open = Open();
    private readonly Task _accepting;

    private HoldingProxy(DnsEndPoint target)
    {
        _target = target;
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Starts a proxy to <paramref name="host"/>:<paramref name="port"/>.</summary>
    public static HoldingProxy Start(string host, int port) => new(new DnsEndPoint(host, port));

    /// <summary>Starts a proxy to the test stack's Redis (<see cref="TestStack.Redis"/>).</summary>
    public static HoldingProxy StartForRedis() => ConfigurationOptions.Parse(TestStack.Redis).EndPoints[0] switch
    {
        DnsEndPoint d => Start(d.Host, d.Port),
        IPEndPoint ip => Start(ip.Address.ToString(), ip.Port),
        var other => throw new InvalidOperationException($"unexpected Redis end point {other}"),
    };

    /// <summary>The test stack's Redis configuration (password included), reaching it through this proxy.</summary>
    public ConfigurationOptions RedisOptions()
    {
        var options = ConfigurationOptions.Parse(TestStack.Redis);
        options.EndPoints.Clear();
        options.EndPoints.Add("127.0.0.1", Port);
        return options;
    }

    public void Hold()
    {
        lock (_clients)
        {
            if (_open.Task.IsCompleted)
            {
                _open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }

    public void Release()
    {
        lock (_clients)
        {
            _open.TrySetResult();
        }
    }

    public async ValueTask DisposeAsync()
    {
        Release();
        await _stop.CancelAsync();
        _listener.Stop();
        lock (_clients)
        {
            _clients.ForEach(c => c.Dispose());
        }

        try
        {
            await _accepting;
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Stopped.
        }

        _stop.Dispose();
    }

    private static TaskCompletionSource Open()
    {
        var open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        open.SetResult();
        return open;
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var client = await _listener.AcceptTcpClientAsync(_stop.Token);
            var server = new TcpClient();
            await server.ConnectAsync(_target.Host, _target.Port, _stop.Token);
            lock (_clients)
            {
                _clients.Add(client);
                _clients.Add(server);
            }

            _ = PumpAsync(client.GetStream(), server.GetStream(), holdable: true);
            _ = PumpAsync(server.GetStream(), client.GetStream(), holdable: false);
        }
    }

    private async Task PumpAsync(NetworkStream from, NetworkStream to, bool holdable)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            int read;
            while ((read = await from.ReadAsync(buffer, _stop.Token)) > 0)
            {
                if (holdable)
                {
                    Task open;
                    lock (_clients)
                    {
                        open = _open.Task;
                    }

                    await open.WaitAsync(_stop.Token);
                }

                await to.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // A side closed, or the proxy stopped: the other side sees the connection end.
        }
    }
}
