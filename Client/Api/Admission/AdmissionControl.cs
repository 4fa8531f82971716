using System.Diagnostics.Metrics;
using System.Globalization;
using System.Security.Claims;
using System.Text.Json;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace OrleansFlashSale.Client.Api.Admission;

/// <summary>
/// Decides whether a purchase may enter the cluster: per-address and per-buyer token buckets first (cheap, no
/// waiting), then the process-wide concurrency bound with its short, deadline-bounded queue. Every refusal is a 429
/// problem with a <c>code</c> and a <c>Retry-After</c>, written before the body is bound, so nothing is deducted.
/// </summary>
public sealed partial class AdmissionControl : IAsyncDisposable
{
    private readonly AdmissionOptions _admission;
    private readonly RateLimitOptions _rates;
    private readonly int _maxBodyBytes;
    private readonly ConcurrencyLimiter _concurrency;
    private readonly PartitionedRateLimiter<string>? _perIp;
    private readonly PartitionedRateLimiter<string>? _perUser;
    private readonly ILogger<AdmissionControl> _logger;
    private readonly SoldOutCache _soldOut;
    private readonly Counter<long> _rejected;
    private readonly UpDownCounter<long> _inFlight;

    public AdmissionControl(IOptions<AdmissionOptions> admission, IOptions<RateLimitOptions> rates, IOptions<GatewayOptions> gateway,
        IMeterFactory meters, ILogger<AdmissionControl> logger, SoldOutCache soldOut)
    {
        _soldOut = soldOut;
        _admission = admission.Value;
        _rates = rates.Value;
        _maxBodyBytes = gateway.Value.MaxBodyBytes;
        _logger = logger;
        _concurrency = new ConcurrencyLimiter(new ConcurrencyLimiterOptions
        {
            PermitLimit = _admission.MaxConcurrentPurchases,
            QueueLimit = _admission.QueueLimit,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
        });
        _perIp = CreatePartitioned(_rates.PerIp);
        _perUser = CreatePartitioned(_rates.PerUser);
        // The project's one meter: the factory hands back the same Meter for the same name.
        var meter = meters.Create(FlashSaleMeter.Name);
        _rejected = meter.CreateCounter<long>("flashsale.gateway.admission.rejected",
            description: "Purchases refused with 429 before reaching the cluster, by reason (ip_rate, user_rate, queue_full, queue_timeout).");
        _inFlight = meter.CreateUpDownCounter<long>("flashsale.gateway.admission.in_flight", description: "Purchases admitted and not yet answered.");
    }

    public bool Enabled => _admission.Enabled;

    /// <summary>Runs <paramref name="next"/> if the purchase is admitted; otherwise writes the 429 answer.</summary>
    public async Task RunAsync(HttpContext context, string sku, RequestDelegate next)
    {
        var ip = context.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        if (_perIp is not null && Refused(_perIp.AttemptAcquire(ip), out var ipRetry))
        {
            await RejectAsync(context, "ip_rate", ErrorCodes.RateLimited, "too many purchases from this address", ipRetry);
            return;
        }

        var buyer = await BuyerKeyAsync(context);

        // The crowd after the last unit: the endpoint will answer these from the sold-out cache without a cluster
        // call, so they take no purchase slot and no buyer allowance (which would turn a cheap 409 into a 429 and
        // keep a rate-limiter partition per buyer alive for nothing). Should the cache lapse in between, that one
        // request reaches the cluster unadmitted.
        if (buyer is not null && _soldOut.WillAnswerSoldOut(sku, buyer[(buyer.IndexOf(':') + 1)..]))
        {
            await next(context);
            return;
        }

        // Per sale as well as per buyer: a buyer's burst on one sale does not spend their allowance on another.
        if (_perUser is not null && buyer is not null
            && Refused(_perUser.AttemptAcquire($"{sku}\n{buyer}"), out var userRetry))
        {
            await RejectAsync(context, "user_rate", ErrorCodes.RateLimited, "too many purchases for this buyer", userRetry);
            return;
        }

        var lease = _concurrency.AttemptAcquire();
        if (!lease.IsAcquired)
        {
            lease.Dispose();
            lease = await WaitForSlotAsync(context);
            if (lease is null)
            {
                return;
            }
        }

        using (lease)
        {
            _inFlight.Add(1);
            try
            {
                await next(context);
            }
            finally
            {
                _inFlight.Add(-1);
            }
        }
    }

    /// <summary>A slot within the queue deadline, or null once the refusal is written (or the client left).</summary>
    private async Task<RateLimitLease?> WaitForSlotAsync(HttpContext context)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        deadline.CancelAfter(_admission.QueueTimeout);
        RateLimitLease lease;
        try
        {
            lease = await _concurrency.AcquireAsync(1, deadline.Token);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The buyer hung up while queued: nobody to answer, nothing was started.
            return null;
        }
        catch (OperationCanceledException)
        {
            await RejectAsync(context, "queue_timeout", ErrorCodes.Overloaded, "no capacity within the queue deadline; retry with the same requestId",
                TimeSpan.FromSeconds(_admission.RetryAfterSeconds));
            return null;
        }

        if (lease.IsAcquired)
        {
            return lease;
        }

        lease.Dispose();
        await RejectAsync(context, "queue_full", ErrorCodes.Overloaded, "the gateway is at capacity; retry with the same requestId",
            TimeSpan.FromSeconds(_admission.RetryAfterSeconds));
        return null;
    }

    private static bool Refused(RateLimitLease lease, out TimeSpan retryAfter)
    {
        using (lease)
        {
            retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : TimeSpan.FromSeconds(1);
            return !lease.IsAcquired;
        }
    }

    private async Task RejectAsync(HttpContext context, string reason, string code, string detail, TimeSpan retryAfter)
    {
        _rejected.Add(1, new KeyValuePair<string, object?>("reason", reason));
        LogRejected(_logger, reason);
        // Whole seconds, at least 1: Retry-After has no fractions, and 0 would invite an immediate retry storm.
        var seconds = Math.Max(1, (long)Math.Ceiling(retryAfter.TotalSeconds));
        context.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        await Problems.Create(StatusCodes.Status429TooManyRequests, code, detail).ExecuteAsync(context);
    }

    /// <summary>
    /// The buyer a purchase counts against: the authenticated subject when authentication ran, else the body's
    /// userId. The body is read once and shared with the endpoint (<see cref="RequestBody"/>); a body the endpoint
    /// will refuse anyway (not JSON, too large, no single string userId) is not limited here.
    /// </summary>
    private async Task<string?> BuyerKeyAsync(HttpContext context)
    {
        if (context.User.Identity?.IsAuthenticated == true)
        {
            var subject = context.User.FindFirst("sub")?.Value ?? context.User.FindFirst(ClaimTypes.NameIdentifier)?.Value ?? context.User.Identity.Name;
            if (!string.IsNullOrEmpty(subject))
            {
                return "sub:" + subject;
            }
        }

        var request = context.Request;
        if (!request.HasJsonContentType() || request.ContentLength > _maxBodyBytes)
        {
            return null;
        }

        // Read once: the endpoint binds the same bytes (RequestBody) instead of reading the stream again.
        var body = await RequestBody.ReadAsync(context, _maxBodyBytes);
        return body.TooLarge ? null : UserIdOf(body.Span) is { } user ? "user:" + user : null;
    }

    /// <summary>The top-level <c>userId</c> string (matched as the endpoint's binder matches it), or null if absent, repeated or malformed.</summary>
    internal static string? UserIdOf(ReadOnlySpan<byte> json)
    {
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 16 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return null;
            }

            string? user = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isUser = string.Equals(reader.GetString(), "userId", StringComparison.OrdinalIgnoreCase);
                reader.Read();
                if (isUser)
                {
                    if (user is not null || reader.TokenType != JsonTokenType.String)
                    {
                        return null;
                    }

                    user = reader.GetString();
                }
                else
                {
                    reader.Skip();
                }
            }

            return string.IsNullOrEmpty(user) ? null : user;
        }
        catch (JsonException)
        {
            return null;
        }
        catch (InvalidOperationException)
        {
            // Unpaired surrogates and the like: the endpoint refuses those bodies itself.
            return null;
        }
    }

    private static PartitionedRateLimiter<string>? CreatePartitioned(TokenBucketSettings settings) =>
        settings.IsOn
            ? PartitionedRateLimiter.Create<string, string>(key => RateLimitPartition.GetTokenBucketLimiter(key, _ => new TokenBucketRateLimiterOptions
            {
                TokenLimit = settings.TokenLimit,
                TokensPerPeriod = settings.TokensPerPeriod,
                ReplenishmentPeriod = settings.ReplenishmentPeriod,
                QueueLimit = 0,
                AutoReplenishment = true,
            }), StringComparer.Ordinal)
            : null;

    public async ValueTask DisposeAsync()
    {
        await _concurrency.DisposeAsync();
        if (_perIp is not null)
        {
            await _perIp.DisposeAsync();
        }

        if (_perUser is not null)
        {
            await _perUser.DisposeAsync();
        }
    }

    [LoggerMessage(EventId = 3301, Level = LogLevel.Debug, Message = "Purchase refused by admission control: {Reason}")]
    private static partial void LogRejected(ILogger logger, string reason);
}
