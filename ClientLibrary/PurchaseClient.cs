using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace OrleansFlashSale.ClientLibrary;

/// <summary>
/// Sends purchases to the cluster the cheap way: each buyer's purchase goes to their home bucket, and concurrent
/// purchases for the same bucket share one grain call (<see cref="IBucketGrain.PurchaseManyAsync"/>), so the bucket
/// runs them in one script and one transactional message. One instance per process, shared by every request.
/// </summary>
/// <remarks>
/// A purchase never waits for a timer: the first ones go out at once, and only while a bucket's calls are in flight
/// do the next ones queue, to leave together when a call returns. A call that fails answers each of its purchases
/// <see cref="PurchaseOutcome.Unavailable"/>; retrying with the same request id is safe, because the request record
/// in Redis answers a replay with the original order.
/// </remarks>
public sealed partial class PurchaseClient
{
    private readonly IGrainFactory _grains;
    private readonly PurchaseClientOptions _options;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<(string Sku, int Bucket), PurchaseLane> _lanes = new();
    private readonly ConcurrentDictionary<string, SaleDefinition> _sales = new(StringComparer.Ordinal);

    public PurchaseClient(IGrainFactory grains, IOptions<PurchaseClientOptions>? options = null, ILogger<PurchaseClient>? logger = null)
    {
        _grains = grains;
        _options = options?.Value ?? new PurchaseClientOptions();
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <summary>Buys for <paramref name="request"/>; looks the sale up once per process (definitions never change).</summary>
    public async Task<PurchaseResult> PurchaseAsync(PurchaseRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var sale = await GetSaleAsync(request.Sku);
        return sale is null ? PurchaseResult.Rejected(PurchaseOutcome.UnknownSale) : await PurchaseAsync(sale, request);
    }

    /// <summary>Buys for <paramref name="request"/> in <paramref name="sale"/>, which the caller already holds.</summary>
    public async Task<PurchaseResult> PurchaseAsync(SaleDefinition sale, PurchaseRequest request)
    {
        ArgumentNullException.ThrowIfNull(sale);
        ArgumentNullException.ThrowIfNull(request);
        var home = GrainKeys.QuotaShard(request.UserId, sale.QuotaShards);
        if (sale.Mode == SaleModes.Database || home >= sale.Buckets)
        {
            // No home bucket for this user (a database sale, or more quota shards than buckets): the quota grain
            // reserves and finds the stock itself.
            return await _grains.Quota(sale.Sku, home).PurchaseAsync(request);
        }

        var lane = _lanes.GetOrAdd((sale.Sku, home), NewLane);
        return (await lane.PurchaseAsync(request)).ToResult(request);
    }

    /// <summary>The sale's definition, cached once found; null for a sale that does not exist (not cached).</summary>
    public async ValueTask<SaleDefinition?> GetSaleAsync(string sku)
    {
        if (_sales.TryGetValue(sku, out var sale))
        {
            return sale;
        }

        sale = await _grains.Product(sku).GetDefinitionAsync();
        if (sale is not null)
        {
            _sales.TryAdd(sku, sale);
        }

        return sale;
    }

    private PurchaseLane NewLane((string Sku, int Bucket) key)
    {
        var bucket = _grains.Bucket(key.Sku, key.Bucket);
        return new PurchaseLane(bucket.PurchaseManyAsync, _options.MaxBatch, _options.CallsInFlightPerBucket,
            (ex, count) => CallFailed(_logger, ex, key.Sku, key.Bucket, count));
    }

    [LoggerMessage(EventId = 7001, Level = LogLevel.Warning, Message = "A purchase call to bucket {Bucket} of {Sku} failed; {Count} purchases answered unavailable")]
    private static partial void CallFailed(ILogger logger, Exception exception, string sku, long bucket, int count);
}
