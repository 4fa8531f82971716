using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace OrleansFlashSale.Cli;

/// <summary>HTTP client of the gateway for the command-line tools (the same API buyers and operators use).</summary>
public sealed class GatewayClient : IDisposable
{
    private readonly HttpClient _http;

    /// <summary>How long a command waits for one answer of the gateway unless <c>FLASHSALE_GATEWAY_TIMEOUT</c> (seconds) says otherwise.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    public GatewayClient(string baseUrl, string? adminToken, TimeSpan? timeout = null)
    {
        var handler = new SocketsHttpHandler { MaxConnectionsPerServer = 512, PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
        _http = new HttpClient(handler) { BaseAddress = new Uri(baseUrl), Timeout = timeout ?? DefaultTimeout };
        if (!string.IsNullOrEmpty(adminToken))
        {
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", adminToken);
        }
    }

    public static GatewayClient FromEnvironment()
    {
        var url = Environment.GetEnvironmentVariable("FLASHSALE_GATEWAY_URL") ?? "http://127.0.0.1:5080";
        TimeSpan? timeout = null;
        if (Environment.GetEnvironmentVariable("FLASHSALE_GATEWAY_TIMEOUT") is { Length: > 0 } text)
        {
            timeout = int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var seconds) && seconds is >= 1 and <= 3600
                ? TimeSpan.FromSeconds(seconds)
                : throw new UsageException($"FLASHSALE_GATEWAY_TIMEOUT must be a whole number of seconds from 1 to 3600, got '{text}'");
        }

        return new GatewayClient(url, Environment.GetEnvironmentVariable("FLASHSALE_ADMIN_TOKEN"), timeout);
    }

    public Uri BaseAddress => _http.BaseAddress!;

    /// <param name="headers">Per-request headers; an <c>Authorization</c> here replaces the admin token (buyer JWTs).</param>
    public async Task<(int Status, JsonElement Body)> SendAsync(HttpMethod method, string path, object? body, CancellationToken cancellationToken = default,
        IReadOnlyDictionary<string, string>? headers = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = JsonContent.Create(body);
        }

        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        using var response = await _http.SendAsync(request, cancellationToken);
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        var json = string.IsNullOrWhiteSpace(text) ? default : JsonDocument.Parse(text).RootElement.Clone();
        return ((int)response.StatusCode, json);
    }

    public void Dispose() => _http.Dispose();
}
