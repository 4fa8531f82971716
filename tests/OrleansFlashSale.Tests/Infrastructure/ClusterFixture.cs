using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Orleans.TestingHost;
using OrleansFlashSale.Client.Api;
using OrleansFlashSale.Client.Api.Admission;
using OrleansFlashSale.Client.Api.Dashboard;
using OrleansFlashSale.Silo;
using StackExchange.Redis;
using OrleansFlashSale.Client;

namespace OrleansFlashSale.Tests;

/// <summary>
/// A multi-silo cluster of real silos (Redis membership, grain state in MariaDB through the ADO.NET provider, stock
/// in Redis) plus the HTTP gateway on a loopback port, shared by the tests of one collection.
/// </summary>
public class ClusterFixture : IAsyncLifetime
{
    private WebApplication? _gateway;

    protected virtual short Silos => 2;

    public InProcessTestCluster Cluster { get; private set; } = null!;

    public IClusterClient Client => Cluster.Client;

    /// <summary>The silos' clock: tests move it to open and close sales.</summary>
    public FakeTimeProvider Time { get; } = new(DateTimeOffset.UtcNow);

    public string ClusterId { get; } = "test-" + Guid.NewGuid().ToString("N")[..12];

    public IConnectionMultiplexer Redis { get; private set; } = null!;

    public HttpClient Http { get; private set; } = null!;

    /// <summary>The gateway's services, for tests that look at its caches.</summary>
    public IServiceProvider GatewayServices => _gateway!.Services;

    /// <summary>The silo's configuration, for tests that talk to the same services directly.</summary>
    public IConfiguration Configuration { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Redis = await ConnectionMultiplexer.ConnectAsync(TestStack.RedisAdmin);
        var settings = TestStack.SiloConfiguration();
        // Each test cluster has its own JetStream streams and durable consumers.
        settings["FlashSale:Nats:StreamPrefix"] = "T" + ClusterId.Replace("-", "", StringComparison.Ordinal).ToUpperInvariant();
        ConfigureSettings(settings);
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var builder = new InProcessTestClusterBuilder(Silos);
        builder.Options.ClusterId = ClusterId;
        builder.Options.ServiceId = ClusterId;
        builder.Options.ConfigureFileLogging = Environment.GetEnvironmentVariable("FLASHSALE_TEST_LOGS") == "1";
        UseRealMembership(builder.Options);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.UseFlashSaleRedisClustering(configuration);
            silo.AddFlashSale(configuration);
            // Only the sale clock is faked: Orleans' own timers keep real time.
            silo.Services.AddSingleton(new OrleansFlashSale.Grains.SaleClock(Time));
            silo.Services.AddSingleton<PipelineFaults>();
            silo.Services.AddSingleton<OrleansFlashSale.Grains.IPipelineFaults>(sp => sp.GetRequiredService<PipelineFaults>());
            ConfigureSilo(silo);
        });
        builder.ConfigureClient(client =>
        {
            client.UseRedisClustering(o => o.ConfigurationOptions = ConfigurationOptions.Parse(TestStack.Redis));
            ConfigureClient(client);
        });
        Configuration = configuration;
        Cluster = builder.Build();
        await Cluster.DeployAsync();
        await StartGatewayAsync(configuration);
    }

    /// <summary>Settings of this fixture's silos and gateway on top of the local stack's.</summary>
    protected virtual void ConfigureSettings(IDictionary<string, string?> settings)
    {
    }

    protected virtual void ConfigureSilo(ISiloBuilder silo)
    {
    }

    protected virtual void ConfigureClient(IClientBuilder client)
    {
    }

    /// <summary>Called after the gateway's own services are added, before it is built.</summary>
    protected virtual void ConfigureGateway(WebApplicationBuilder gateway)
    {
    }

    public async Task DisposeAsync()
    {
        Http?.Dispose();
        if (_gateway is not null)
        {
            await _gateway.DisposeAsync();
        }

        await Cluster.DisposeAsync();
        await Redis.DisposeAsync();
    }

    /// <summary>A SKU no other test (or earlier run) has used.</summary>
    public static string NewSku(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..Math.Min(64, prefix.Length + 33)];

    public async Task<SaleDefinition> CreateSaleAsync(string prefix, long stock, int buckets, int perUserLimit,
        int quotaShards = 16, DateTimeOffset? startsAt = null, DateTimeOffset? endsAt = null)
    {
        var sale = new SaleDefinition(NewSku(prefix), stock, buckets, perUserLimit, startsAt, endsAt,
            SaleRules.DefaultPaymentTimeoutSeconds, quotaShards, SaleModes.Redis);
        var created = await Client.Product(sale.Sku).CreateAsync(sale);
        Assert.Equal(CreateSaleOutcome.Created, created.Outcome);
        return sale;
    }

    /// <summary>
    /// Buys through the client library, as every gateway does: home bucket first (users whose quota shard has a
    /// bucket of the same index), the quota grain's overflow path for the others.
    /// </summary>
    public Task<PurchaseResult> BuyAsync(SaleDefinition sale, string user, string requestId, int quantity = 1) =>
        (_purchases ??= new OrleansFlashSale.ClientLibrary.PurchaseClient(Client))
            .PurchaseAsync(sale, new PurchaseRequest(sale.Sku, user, requestId, quantity));

    private OrleansFlashSale.ClientLibrary.PurchaseClient? _purchases;

    /// <summary>
    /// <paramref name="requests"/> concurrent purchases of one unit, spread over <paramref name="users"/> users, each with
    /// its own request id; every one must get a definite answer (none unavailable).
    /// </summary>
    public async Task<SaleHistory> BuyOutAsync(SaleDefinition sale, int users, int requests)
    {
        var history = new SaleHistory();
        await Task.WhenAll(Enumerable.Range(0, requests).Select(async j =>
        {
            var user = $"u{j % users}";
            history.Record(user, $"r{j}", await BuyAsync(sale, user, $"r{j}"));
        }));
        Assert.Equal(0, history.Count(PurchaseOutcome.Unavailable));
        return history;
    }

    /// <summary>The states of every transaction fence of buckets 0 to <paramref name="buckets"/> − 1, from every primary.</summary>
    public async Task<List<string>> FenceStatesAsync(string sku, int buckets)
    {
        var states = new List<string>();
        foreach (var server in Redis.GetServers().Where(s => !s.IsReplica))
        {
            for (var bucket = 0; bucket < buckets; bucket++)
            {
                await foreach (var key in server.KeysAsync(pattern: OrleansFlashSale.Redis.RedisKeys.Fence(sku, bucket, "*").ToString()))
                {
                    states.Add((string)(await Redis.GetDatabase().StringGetAsync(key))!);
                }
            }
        }

        return states;
    }

    /// <summary>
    /// Runs the reconciliation until the sale is at rest (nothing of it in flight), then requires both equations to
    /// hold and no problem at all; fails when the sale is not at rest within <paramref name="within"/> (30 s).
    /// </summary>
    public async Task AssertNoDriftAsync(string sku, TimeSpan? within = null)
    {
        var verifier = Client.GetGrain<IReconciliationGrain>(0);
        var deadline = DateTime.UtcNow + (within ?? TimeSpan.FromSeconds(30));
        while (true)
        {
            var report = await verifier.VerifyAsync(sku, repair: false);
            Assert.NotNull(report);
            if (report.AtRest)
            {
                Assert.True(report.RedisEquation.Holds && report.InventoryEquation.Holds && !report.Drift,
                    $"verify reports drift at rest: {string.Join("; ", report.Problems)} ({report.RedisEquation}, {report.InventoryEquation})");
                return;
            }

            Assert.True(DateTime.UtcNow < deadline,
                $"the sale never came to rest: {report.PendingInPipeline.Count} pending, {report.Messages.HalfMessagesForSku} half messages, " +
                $"writer backlog {report.Messages.WriterPending}; problems: {string.Join("; ", report.Problems)}");
            await Task.Delay(200);
        }
    }

    /// <summary>Remaining stock per bucket read straight from Redis, not through any grain.</summary>
    public async Task<long[]> RedisStockAsync(string sku, int buckets)
    {
        var db = Redis.GetDatabase();
        var values = await Task.WhenAll(Enumerable.Range(0, buckets)
            .Select(i => db.StringGetAsync(OrleansFlashSale.Redis.RedisKeys.Stock(sku, i))));
        return values.Select(v => v.IsNull ? 0 : (long)v).ToArray();
    }

    /// <summary>
    /// The in-process cluster's own membership table would replace Redis clustering (its registration comes last).
    /// Its switch is internal in Orleans 10.4, hence reflection; the test fails loudly if the property goes away.
    /// </summary>
    private static void UseRealMembership(InProcessTestClusterOptions options)
    {
        var property = typeof(InProcessTestClusterOptions).GetProperty("UseTestClusterMembership",
            System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Public)
            ?? throw new InvalidOperationException("InProcessTestClusterOptions.UseTestClusterMembership no longer exists.");
        property.SetValue(options, false);
    }

    private async Task StartGatewayAsync(IConfiguration configuration)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Configuration.AddConfiguration(configuration);
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        builder.Services.AddSingleton<IGrainFactory>(Cluster.Client);
        builder.Services.AddFlashSaleGateway(builder.Configuration);
        // With its default limits, so every HTTP test also shows the defaults do not throttle ordinary use.
        builder.Services.AddFlashSaleAdmission(builder.Configuration);
        ConfigureGateway(builder);
        _gateway = builder.Build();
        _gateway.UseFlashSaleAdmission();
        _gateway.MapFlashSaleApi();
        _gateway.MapFlashSaleDashboard(orleansDashboard: false);
        _gateway.MapFlashSaleCluster();
        await _gateway.StartAsync();
        var address = _gateway.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Http = new HttpClient { BaseAddress = new Uri(address) };
    }
}

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "cluster";
}
