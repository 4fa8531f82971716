using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using OrleansFlashSale.Client.Api;
using OrleansFlashSale.Grains;
using OrleansFlashSale.Messaging;
using OrleansFlashSale.Persistence;
using OrleansFlashSale.Client;

namespace OrleansFlashSale.UnitTests;

/// <summary>A bad setting stops the host at start with a message naming the setting.</summary>
public sealed class OptionsValidationTests
{
    private static async Task<string> StartFailureAsync(Dictionary<string, string?> settings, Action<IServiceCollection, IConfiguration> register)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddInMemoryCollection(settings);
        register(builder.Services, builder.Configuration);
        using var host = builder.Build();
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        return error.Message;
    }

    [Fact]
    public async Task Missing_redis_connection_string_is_named()
    {
        var settings = GrainSettings();
        settings.Remove("FlashSale:Redis:ConnectionString");
        var message = await StartFailureAsync(settings, (s, c) => s.AddFlashSaleGrains(c));
        Assert.Contains("FlashSale:Redis:ConnectionString is required", message);
    }

    [Fact]
    public async Task Out_of_range_batch_size_is_named()
    {
        var settings = GrainSettings();
        settings["FlashSale:Deduction:MaxBatch"] = "0";
        var message = await StartFailureAsync(settings, (s, c) => s.AddFlashSaleGrains(c));
        Assert.Contains("FlashSale:Deduction:MaxBatch must be between 1 and 4096", message);
    }

    [Fact]
    public async Task Out_of_range_log_sample_period_is_named()
    {
        var settings = GrainSettings();
        settings["FlashSale:Deduction:LogSampleSeconds"] = "0";
        var message = await StartFailureAsync(settings, (s, c) => s.AddFlashSaleGrains(c));
        Assert.Contains("FlashSale:Deduction:LogSampleSeconds must be between 1 and 3600", message);
    }

    [Theory]
    [InlineData("-1", null, "FlashSale:Deduction:TransactionEpochMilliseconds must be between 0 and 1000")]
    [InlineData("1001", null, "FlashSale:Deduction:TransactionEpochMilliseconds must be between 0 and 1000")]
    // A transaction still open when the check-back looks at it would be closed under its bucket.
    [InlineData("300", "00:00:01", "FlashSale:Deduction:TransactionEpochMilliseconds (300) must be at most a quarter of FlashSale:Nats:TransactionTimeout (00:00:01)")]
    public async Task Transaction_epoch_out_of_range_or_too_close_to_the_check_back_is_named(string epoch, string? timeout, string expected)
    {
        var settings = GrainSettings();
        settings["FlashSale:Deduction:TransactionEpochMilliseconds"] = epoch;
        settings["FlashSale:Nats:TransactionTimeout"] = timeout;
        var message = await StartFailureAsync(settings, (s, c) =>
        {
            s.AddOptions<JetStreamOptions>().Bind(c.GetSection(JetStreamOptions.Section));
            s.AddFlashSaleGrains(c);
        });
        Assert.Contains(expected, message);
    }

    [Fact]
    public async Task Short_admin_token_is_named()
    {
        var message = await StartFailureAsync(new()
        {
            ["FlashSale:Gateway:AdminToken"] = "short",
            ["FlashSale:Auth:AllowNoneInProduction"] = "true",
        }, (s, c) => s.AddFlashSaleGateway(c));
        Assert.Contains("FlashSale:Gateway:AdminToken must be set", message);
    }

    /// <summary>What AddFlashSaleGrains needs to get as far as validating options: every required setting, valid.</summary>
    private static Dictionary<string, string?> GrainSettings() => new()
    {
        ["FlashSale:Redis:ConnectionString"] = "127.0.0.1:1",
        ["FlashSale:Nats:Url"] = "nats://127.0.0.1:1",
        ["FlashSale:Nats:User"] = "flashsale",
        ["FlashSale:Nats:Password"] = "test-password",
        ["FlashSale:MySql:ConnectionString"] = "Server=127.0.0.1;Database=d",
    };

    private static void AddMessaging(IServiceCollection services, IConfiguration configuration)
    {
        services.AddSingleton<ITransactionChecker, NoChecker>();
        services.AddFlashSaleMessaging(configuration);
    }

    [Fact]
    public async Task Missing_nats_url_is_named()
    {
        var message = await StartFailureAsync(new(), AddMessaging);
        Assert.Contains("FlashSale:Nats:Url is required", message);
    }

    [Fact]
    public async Task Missing_nats_credentials_are_named()
    {
        var message = await StartFailureAsync(new() { ["FlashSale:Nats:Url"] = "nats://127.0.0.1:1" }, AddMessaging);
        Assert.Contains("FlashSale:Nats:User and FlashSale:Nats:Password (or FlashSale:Nats:Token) are required", message);
    }

    [Theory]
    [InlineData("nats://127.0.0.1:4222", "flashsale", "secret", "", null)]
    [InlineData("nats://127.0.0.1:4222", "", "", "a-token", null)]
    [InlineData("nats://flashsale:secret@127.0.0.1:4222,nats://127.0.0.1:4223", "", "", "", null)]
    [InlineData("nats://127.0.0.1:4222", "flashsale", "", "", "FlashSale:Nats:Password is required when FlashSale:Nats:User is set.")]
    [InlineData("nats://127.0.0.1:4222", "", "secret", "", "FlashSale:Nats:User is required when FlashSale:Nats:Password is set.")]
    [InlineData("nats://127.0.0.1:4222", "flashsale", "secret", "a-token", "FlashSale:Nats:Token and FlashSale:Nats:User/FlashSale:Nats:Password are two ways to authenticate: set one of them, not both.")]
    [InlineData("nats://127.0.0.1:4222,nats://flashsale:secret@127.0.0.1:4223", "", "", "", "FlashSale:Nats:User and FlashSale:Nats:Password (or FlashSale:Nats:Token) are required")]
    public void Nats_credentials_are_one_user_and_password_or_one_token(string url, string user, string password, string token, string? error)
    {
        var result = new JetStreamOptionsValidator().Validate(null, new JetStreamOptions { Url = url, User = user, Password = password, Token = token });
        if (error is null)
        {
            Assert.True(result.Succeeded, result.FailureMessage);
        }
        else
        {
            Assert.StartsWith(error, Assert.Single(result.Failures!), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Duplicate_window_shorter_than_the_check_back_delay_is_named()
    {
        var message = await StartFailureAsync(new()
        {
            ["FlashSale:Nats:Url"] = "nats://127.0.0.1:1",
            ["FlashSale:Nats:TransactionTimeout"] = "00:00:06",
            ["FlashSale:Nats:CheckInterval"] = "00:00:30",
            ["FlashSale:Nats:DuplicateWindow"] = "00:00:20",
        }, AddMessaging);
        Assert.Contains("FlashSale:Nats:DuplicateWindow (00:00:20) must be longer than TransactionTimeout + CheckInterval (00:00:36", message);
    }

    [Fact]
    public async Task Stream_prefix_that_is_not_one_subject_token_is_named()
    {
        var message = await StartFailureAsync(new()
        {
            ["FlashSale:Nats:Url"] = "nats://127.0.0.1:1",
            ["FlashSale:Nats:StreamPrefix"] = "FLASH.SALE",
        }, AddMessaging);
        Assert.Contains("FlashSale:Nats:StreamPrefix must be", message);
    }

    [Fact]
    public void Default_nats_timings_are_valid()
    {
        var result = new JetStreamOptionsValidator().Validate(null, new JetStreamOptions { Url = "nats://127.0.0.1:4222", User = "flashsale", Password = "test-password" });
        Assert.True(result.Succeeded, result.FailureMessage);
    }

    [Fact]
    public async Task Bad_order_store_settings_are_named()
    {
        var message = await StartFailureAsync(new()
        {
            ["FlashSale:OrderStore:ConnectionString"] = "Server=127.0.0.1;Database=flashsale",
            ["FlashSale:OrderStore:MaxGroupSize"] = "0",
            ["FlashSale:OrderStore:MaxRetries"] = "-1",
            ["FlashSale:OrderStore:CommitsPerSku"] = "0",
        }, (s, c) => s.AddFlashSaleOrderStore(c));
        Assert.Contains("FlashSale:OrderStore:CommitsPerSku must be between 1 and 16", message);
        Assert.Contains("FlashSale:OrderStore:MaxGroupSize must be between 1 and 10000", message);
        Assert.Contains("FlashSale:OrderStore:MaxRetries must be between 0 and 100", message);
    }

    [Fact]
    public async Task Missing_order_store_connection_string_is_named()
    {
        var message = await StartFailureAsync(new(), (s, c) => s.AddFlashSaleOrderStore(c));
        Assert.Contains("FlashSale:OrderStore:ConnectionString is required", message);
    }

    [Fact]
    public void The_orleans_dashboard_is_off_unless_configured_on_both_silo_and_gateway()
    {
        var empty = new ConfigurationBuilder().Build();
        Assert.False((empty.GetSection(OrleansFlashSale.Silo.FlashSaleSiloOptions.Section).Get<OrleansFlashSale.Silo.FlashSaleSiloOptions>()
            ?? new OrleansFlashSale.Silo.FlashSaleSiloOptions()).OrleansDashboard);
        Assert.False((empty.GetSection(GatewayOptions.Section).Get<GatewayOptions>() ?? new GatewayOptions()).OrleansDashboard);

        var on = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["FlashSale:Silo:OrleansDashboard"] = "true",
            ["FlashSale:Gateway:OrleansDashboard"] = "true",
        }).Build();
        Assert.True(on.GetSection(OrleansFlashSale.Silo.FlashSaleSiloOptions.Section).Get<OrleansFlashSale.Silo.FlashSaleSiloOptions>()!.OrleansDashboard);
        Assert.True(on.GetSection(GatewayOptions.Section).Get<GatewayOptions>()!.OrleansDashboard);
    }

    [Fact]
    public void Options_never_print_secrets()
    {
        var redis = new OrleansFlashSale.Redis.FlashSaleRedisOptions { ConnectionString = "127.0.0.1:1,password=hunter2secret" };
        var mysql = new OrleansFlashSale.Silo.FlashSaleMySqlOptions { ConnectionString = "Server=h;Database=d;User ID=u;Password=hunter2secret" };
        var gateway = new GatewayOptions { AdminToken = "hunter2secret-admin-token" };
        var orders = new OrderStoreOptions { ConnectionString = "Server=h;Database=d;User ID=u;Password=hunter2secret" };
        Assert.DoesNotContain("hunter2", orders.ToString());
        Assert.DoesNotContain("hunter2", redis.ToString());
        Assert.DoesNotContain("hunter2", mysql.ToString());
        Assert.DoesNotContain("hunter2", gateway.ToString());
        var nats = new JetStreamOptions { Url = "nats://app:hunter2secret@127.0.0.1:4222,nats://127.0.0.1:4223" };
        Assert.DoesNotContain("hunter2", nats.ToString());
        Assert.Contains("127.0.0.1:4223", nats.ToString());
        var natsPassword = new JetStreamOptions { Url = "nats://127.0.0.1:4222", User = "flashsale", Password = "hunter2secret" };
        Assert.Equal("NATS nats://127.0.0.1:4222 prefix FLASHSALE, user flashsale, password set", natsPassword.ToString());
        var natsToken = new JetStreamOptions { Url = "nats://127.0.0.1:4222", Token = "hunter2secret" };
        Assert.Equal("NATS nats://127.0.0.1:4222 prefix FLASHSALE, token set", natsToken.ToString());
        var auth = new AuthOptions { SigningKey = "hunter2secret-signing-key-0123456789", PurchaseTokenKey = "hunter2secret-purchase-key-0123456789" };
        Assert.DoesNotContain("hunter2", auth.ToString());
    }

    private sealed class NoChecker : ITransactionChecker
    {
        public Task<TransactionCheckResult> CheckAsync(HalfMessage half, CancellationToken ct) => Task.FromResult(TransactionCheckResult.Unknown);
    }
}
