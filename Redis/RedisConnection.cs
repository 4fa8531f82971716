using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace OrleansFlashSale.Redis;

public sealed class FlashSaleRedisOptions
{
    public const string Section = "FlashSale:Redis";

    /// <summary>StackExchange.Redis configuration string, e.g. <c>127.0.0.1:16379,password=...</c>.</summary>
    public string ConnectionString { get; set; } = "";

    /// <summary>How long one Redis command may take before its outcome is treated as unknown.</summary>
    public int CommandTimeoutMs { get; set; } = 2000;

    public ConfigurationOptions ToConfiguration()
    {
        var options = ConfigurationOptions.Parse(ConnectionString);
        options.AbortOnConnectFail = false;
        options.AsyncTimeout = CommandTimeoutMs;
        options.SyncTimeout = CommandTimeoutMs;
        options.ConnectTimeout = Math.Max(CommandTimeoutMs, 5000);
        options.ClientName ??= "orleans-flashsale";
        return options;
    }

    public override string ToString() => $"Redis {ConfigurationOptions.Parse(ConnectionString).ToString(includePassword: false)}";
}

public sealed class FlashSaleRedisOptionsValidator : IValidateOptions<FlashSaleRedisOptions>
{
    public ValidateOptionsResult Validate(string? name, FlashSaleRedisOptions options)
    {
        if (string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            return ValidateOptionsResult.Fail($"{FlashSaleRedisOptions.Section}:ConnectionString is required (e.g. 127.0.0.1:16379,password=...).");
        }

        try
        {
            ConfigurationOptions.Parse(options.ConnectionString);
        }
        catch (ArgumentException ex)
        {
            return ValidateOptionsResult.Fail($"{FlashSaleRedisOptions.Section}:ConnectionString is not valid: {ex.Message}");
        }

        return options.CommandTimeoutMs is < 50 or > 60_000
            ? ValidateOptionsResult.Fail($"{FlashSaleRedisOptions.Section}:CommandTimeoutMs must be between 50 and 60000.")
            : ValidateOptionsResult.Success;
    }
}

/// <summary>The one multiplexer of the process, connected on first use.</summary>
public sealed class RedisConnection : IAsyncDisposable
{
    private readonly Lazy<Task<IConnectionMultiplexer>> _multiplexer;

    public RedisConnection(IOptions<FlashSaleRedisOptions> options)
    {
        _multiplexer = new(async () => await ConnectionMultiplexer.ConnectAsync(options.Value.ToConfiguration()));
    }

    public Task<IConnectionMultiplexer> GetMultiplexerAsync() => _multiplexer.Value;

    public async ValueTask<IDatabase> GetDatabaseAsync() => (await _multiplexer.Value).GetDatabase();

    public async ValueTask DisposeAsync()
    {
        if (_multiplexer.IsValueCreated)
        {
            await (await _multiplexer.Value).DisposeAsync();
        }
    }
}
