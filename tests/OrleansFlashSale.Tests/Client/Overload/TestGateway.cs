using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OrleansFlashSale.Client.Api;
using OrleansFlashSale.Client.Api.Admission;
using OrleansFlashSale.Client;

namespace OrleansFlashSale.Tests.Overload;

/// <summary>
/// A gateway of its own on the test cluster, with settings the test chooses (small admission limits, say), wired
/// as the real host wires it. Restartable on the same port, as a redeployed gateway behind a fixed address is.
/// </summary>
public sealed class TestGateway : IAsyncDisposable
{
    private readonly IGrainFactory _grains;
    private readonly IConfiguration _configuration;
    private WebApplication? _app;

    private TestGateway(IGrainFactory grains, IConfiguration configuration)
    {
        _grains = grains;
        _configuration = configuration;
    }

    public int Port { get; private set; }

    public Uri Address => new($"http://127.0.0.1:{Port}");

    public IServiceProvider Services => _app?.Services ?? throw new InvalidOperationException("the gateway is stopped");

    public static async Task<TestGateway> StartAsync(ClusterFixture fixture, Dictionary<string, string?> overrides)
    {
        var configuration = new ConfigurationBuilder().AddConfiguration(fixture.Configuration).AddInMemoryCollection(overrides).Build();
        var gateway = new TestGateway(fixture.Client, configuration);
        await gateway.StartAsync(port: 0);
        return gateway;
    }

    /// <summary>A client whose every request ends within <paramref name="timeout"/>, so no test can hang on one.</summary>
    /// Its connections are bounded like a real load balancer's, so an open-loop load queues in the client instead of
    /// opening a socket per waiting request.
    public HttpClient CreateClient(TimeSpan timeout) => new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5), MaxConnectionsPerServer = 1024 })
    {
        BaseAddress = Address,
        Timeout = timeout,
    };

    public async Task StartAsync(int port)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Configuration.AddConfiguration(_configuration);
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port));
        builder.Services.AddSingleton(_grains);
        builder.Services.AddFlashSaleGateway(builder.Configuration);
        builder.Services.AddFlashSaleAdmission(builder.Configuration);
        var app = builder.Build();
        app.UseFlashSaleAdmission();
        app.MapFlashSaleApi();
        await app.StartAsync();
        var address = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Port = new Uri(address).Port;
        _app = app;
    }

    /// <summary>Stops as a redeploy does: no new connections, in-flight requests get up to <paramref name="grace"/> to finish.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (_app is null)
        {
            return;
        }

        using var timeout = new CancellationTokenSource(grace);
        await _app.StopAsync(timeout.Token);
        await _app.DisposeAsync();
        _app = null;
    }

    public async ValueTask DisposeAsync() => await StopAsync(TimeSpan.FromSeconds(5));
}
