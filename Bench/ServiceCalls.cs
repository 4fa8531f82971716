using System.Globalization;
using System.Text.Json;
using StackExchange.Redis;

namespace OrleansFlashSale.Bench;

/// <summary>
/// Calls the stack's services served over a measurement window: Redis commands (INFO commandstats, every primary;
/// commands that scripts run count too, as Redis counts them) and JetStream API calls (the NATS monitor's /jsz
/// <c>api.total</c>), so each figure shows what an operation costs the services and not only how fast it went.
/// </summary>
/// <remarks>
/// Counts everything the services did in the window, the order pipeline and the check-back included: that is the
/// cost of an operation end to end. A service that cannot be read is left out of the details, with the reason.
/// </remarks>
public sealed class ServiceCalls : IAsyncDisposable
{
    /// <summary>The NATS monitoring endpoint, e.g. http://127.0.0.1:18222 (printed by <c>./flashsale env</c>).</summary>
    public const string MonitorVariable = "FLASHSALE_NATS_MONITOR_URL";

    private static readonly string[] Ignored = ["info", "ping", "cluster", "client", "config", "command", "hello"];

    private readonly ConnectionMultiplexer? _redis;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(3) };
    private readonly string? _monitor = Environment.GetEnvironmentVariable(MonitorVariable);
    private readonly string? _silo = Environment.GetEnvironmentVariable(RuntimeWarmth.SiloVariable);
    private Snapshot _start = new([], null, null, null);

    private ServiceCalls(ConnectionMultiplexer? redis) => _redis = redis;

    public static async Task<ServiceCalls> StartAsync()
    {
        ConnectionMultiplexer? redis = null;
        if (Environment.GetEnvironmentVariable("FlashSale__Redis__ConnectionString") is { Length: > 0 } connection)
        {
            // INFO is an admin command to StackExchange.Redis; this connection only reads INFO commandstats.
            var options = ConfigurationOptions.Parse(connection);
            options.AllowAdmin = true;
            options.AbortOnConnectFail = false;
            redis = await ConnectionMultiplexer.ConnectAsync(options);
        }

        var calls = new ServiceCalls(redis);
        calls._start = await calls.TakeAsync();
        return calls;
    }

    /// <summary>
    /// Detail entries over the window, per counted operation: "redis cmds/op", "redis cmds/op EVALSHA" (and the
    /// other commands that make up at least 5 % of them), "jetstream api/op"; and, when the silo's bucket scripts
    /// ran in the window, the purchases and deductions one script call carried on average.
    /// </summary>
    public async Task<IReadOnlyDictionary<string, string>> StopAsync(long operations)
    {
        var end = await TakeAsync();
        var details = new Dictionary<string, string>();
        if (operations <= 0)
        {
            return details;
        }

        if (end.Error is null && _start.Error is null && end.Redis.Count > 0)
        {
            var delta = end.Redis.ToDictionary(kv => kv.Key, kv => kv.Value - _start.Redis.GetValueOrDefault(kv.Key));
            var total = delta.Values.Sum();
            details["redis cmds/op"] = Format(total, operations);
            foreach (var (command, count) in delta.Where(kv => kv.Value > 0 && kv.Value >= total * 0.05).OrderByDescending(kv => kv.Value))
            {
                details[$"redis cmds/op {command.ToUpperInvariant()}"] = Format(count, operations);
            }
        }
        else
        {
            details["redis cmds/op"] = "not measured: " + (end.Error ?? _start.Error ?? "no Redis connection string");
        }

        if (end.Scripts is { } s1 && _start.Scripts is { } s0 && s1.Calls > s0.Calls)
        {
            details["purchases per bucket script"] = ((s1.Items - s0.Items) / (s1.Calls - s0.Calls)).ToString("F1", CultureInfo.InvariantCulture);
        }

        details["jetstream api/op"] = end.JetStreamApi is { } after && _start.JetStreamApi is { } before
            ? Format(after - before, operations)
            : "not measured: " + (_monitor is null ? $"{MonitorVariable} is not set" : "the NATS monitor did not answer");
        return details;
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        if (_redis is not null)
        {
            await _redis.DisposeAsync();
        }
    }

    private static string Format(long count, long operations) =>
        (count / (double)operations).ToString("F2", CultureInfo.InvariantCulture);

    private async Task<Snapshot> TakeAsync()
    {
        var redis = new Dictionary<string, long>(StringComparer.Ordinal);
        string? error = null;
        if (_redis is not null)
        {
            try
            {
                foreach (var server in _redis.GetServers().Where(s => s.IsConnected && !s.IsReplica))
                {
                    foreach (var (key, value) in (await server.InfoAsync("commandstats")).SelectMany(g => g))
                    {
                        // cmdstat_evalsha → calls=123,usec=…
                        var command = key.StartsWith("cmdstat_", StringComparison.Ordinal) ? key["cmdstat_".Length..] : null;
                        if (command is null || Ignored.Contains(command))
                        {
                            continue;
                        }

                        var calls = value.Split(',').FirstOrDefault(p => p.StartsWith("calls=", StringComparison.Ordinal));
                        if (calls is not null && long.TryParse(calls["calls=".Length..], NumberStyles.None, CultureInfo.InvariantCulture, out var n))
                        {
                            redis[command] = redis.GetValueOrDefault(command) + n;
                        }
                    }
                }
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                error = ex.Message;
            }
        }

        return new Snapshot(redis, await JetStreamApiAsync(), error, await ScriptBatchesAsync());
    }

    private async Task<long?> JetStreamApiAsync()
    {
        if (_monitor is null)
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(await _http.GetStringAsync(_monitor.TrimEnd('/') + "/jsz"));
            return document.RootElement.GetProperty("api").GetProperty("total").GetInt64();
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or JsonException or KeyNotFoundException)
        {
            return null;
        }
    }

    /// <summary>
    /// The silo's bucket script calls so far and the purchases and deductions they carried
    /// (<c>flashsale.deduct.batch_size</c>), or null when the silo's metrics do not answer. Only the first silo.
    /// </summary>
    private async Task<(double Items, double Calls)?> ScriptBatchesAsync()
    {
        if (_silo is null)
        {
            return null;
        }

        try
        {
            var text = await _http.GetStringAsync(_silo.TrimEnd('/') + "/metrics");
            return (PrometheusText.Sample(text, "flashsale_deduct_batch_size_sum") ?? 0, PrometheusText.Sample(text, "flashsale_deduct_batch_size_count") ?? 0);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    private sealed record Snapshot(Dictionary<string, long> Redis, long? JetStreamApi, string? Error, (double Items, double Calls)? Scripts);
}
