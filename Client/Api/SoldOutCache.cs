using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace OrleansFlashSale.Client.Api;

/// <summary>
/// The gateway's memory of "this sale is sold out", so that the crowd arriving after the last unit is refused
/// without a cluster call. Rules, and why:
/// <list type="bullet">
/// <item>It is learned only from the quota grain answering <c>sold_out</c> to a one-unit purchase (a larger quantity
/// may be refused while single units remain), and forgotten after <c>SoldOutCacheMs</c> (units come back through
/// cancel and expiry) or at once when this gateway sees a purchase succeed.</item>
/// <item>A replay of an earlier success must still get its order, and the gateway cannot tell a replay from a new
/// request. Only a user who holds units can be replaying a success, so the cache starts answering only after it
/// has read the sale's buyers (every quota shard's unit counters, read after the sold-out answer, hence holding
/// everyone who bought before it); requests of those users, and of users this gateway saw succeed since, go to the
/// quota grain as before. Everyone else gets the very same 409 <c>sold_out</c> problem the grain would give.</item>
/// <item>A sale whose end has passed is forwarded, so the buyer hears <c>ended</c> as before.</item>
/// </list>
/// What it cannot see: with several gateways, a unit returned and bought through another gateway inside one cache
/// period, then replayed here before this cache expires, is answered <c>sold_out</c> (at most one period late).
/// </summary>
public sealed partial class SoldOutCache
{
    private readonly ConcurrentDictionary<string, SaleState> _sales = new(StringComparer.Ordinal);
    private readonly IGrainFactory _grains;
    private readonly TimeSpan _period;
    private readonly TimeProvider _time;
    private readonly ILogger<SoldOutCache> _logger;
    private readonly Counter<long> _answered;

    /// <param name="time">Only tests pass one, to move the cache's clock.</param>
    public SoldOutCache(IGrainFactory grains, IOptions<GatewayOptions> options, IMeterFactory meters, ILogger<SoldOutCache> logger,
        TimeProvider? time = null)
    {
        _grains = grains;
        _period = TimeSpan.FromMilliseconds(options.Value.SoldOutCacheMs);
        _time = time ?? TimeProvider.System;
        _logger = logger;
        // The project's one meter (same name, so the factory hands back the same instance).
        _answered = meters.Create(FlashSaleMeter.Name).CreateCounter<long>("flashsale.gateway.sold_out_cached",
            description: "Purchases the gateway refused from its sold-out cache, without a cluster call.");
    }

    /// <summary>True when this request may be refused as sold out without asking the cluster.</summary>
    public bool CanAnswerSoldOut(SaleDefinition sale, string userId)
    {
        if (!WillAnswerSoldOut(sale.Sku, userId))
        {
            return false;
        }

        _answered.Add(1);
        return true;
    }

    /// <summary>
    /// The same question by SKU alone, without counting an answer: admission control asks it before the endpoint
    /// runs, so that a refusal that will be answered from memory spends no purchase slot and no buyer allowance.
    /// </summary>
    public bool WillAnswerSoldOut(string sku, string userId)
    {
        if (_period <= TimeSpan.Zero || !_sales.TryGetValue(sku, out var state))
        {
            return false;
        }

        // Definitions never change, so the end the state was learned with is the sale's end.
        if (state.EndsAt is { } end && _time.GetUtcNow() >= end)
        {
            return false;
        }

        return state.Answers(_time.GetTimestamp(), userId);
    }

    /// <summary>Learns from the cluster's answer to a purchase this gateway forwarded.</summary>
    public void Observe(SaleDefinition sale, PurchaseRequest request, PurchaseResult result)
    {
        if (_period <= TimeSpan.Zero)
        {
            return;
        }

        switch (result.Outcome)
        {
            case PurchaseOutcome.Created:
                // Units were there a moment ago: whatever this gateway believed is stale.
                if (_sales.TryGetValue(sale.Sku, out var stale))
                {
                    stale.Forget();
                }

                break;
            case PurchaseOutcome.Replayed:
                if (_sales.TryGetValue(sale.Sku, out var known))
                {
                    known.AddBuyer(request.UserId);
                }

                break;
            case PurchaseOutcome.SoldOut when request.Quantity == 1:
                var state = _sales.GetOrAdd(sale.Sku, _ => new SaleState(sale.EndsAt));
                if (state.TryStartLoading(_time.GetTimestamp(), out var generation))
                {
                    _ = LoadAsync(sale, state, generation);
                }

                break;
        }
    }

    private async Task LoadAsync(SaleDefinition sale, SaleState state, long generation)
    {
        try
        {
            var buyers = await _grains.GetGrain<IBuyersGrain>(sale.Sku).GetBuyersAsync(sale.QuotaShards);
            state.Loaded(generation, buyers, _time.GetTimestamp() + (long)(_period.TotalSeconds * _time.TimestampFrequency));
        }
        catch (Exception ex)
        {
            // Without the buyers no request may be answered from the cache; the next sold-out answer tries again.
            state.LoadFailed();
            LogBuyersLoadFailed(_logger, ex, sale.Sku);
        }
    }

    [LoggerMessage(EventId = 3201, Level = LogLevel.Warning, Message = "Could not read the buyers of sale {Sku}; its sold-out state is not cached")]
    private static partial void LogBuyersLoadFailed(ILogger logger, Exception exception, string sku);

    /// <summary>One sale's cached state; a lock because forwarded answers and loads race from many requests.</summary>
    private sealed class SaleState(DateTimeOffset? endsAt)
    {
        private readonly Lock _gate = new();
        private long _generation;
        private bool _loading;
        private long _validUntil;
        private HashSet<string>? _buyers;

        public DateTimeOffset? EndsAt { get; } = endsAt;

        public bool Answers(long now, string userId)
        {
            lock (_gate)
            {
                return _buyers is not null && now < _validUntil && !_buyers.Contains(userId);
            }
        }

        public void Forget()
        {
            lock (_gate)
            {
                // A load started before this success may have read the buyers before it: its result is discarded.
                _generation++;
                _buyers = null;
                _validUntil = 0;
            }
        }

        public void AddBuyer(string userId)
        {
            lock (_gate)
            {
                _buyers?.Add(userId);
            }
        }

        public bool TryStartLoading(long now, out long generation)
        {
            lock (_gate)
            {
                generation = _generation;
                if (_loading || (_buyers is not null && now < _validUntil))
                {
                    return false;
                }

                _loading = true;
                return true;
            }
        }

        public void Loaded(long generation, string[] buyers, long validUntil)
        {
            lock (_gate)
            {
                _loading = false;
                if (generation == _generation)
                {
                    _buyers = new HashSet<string>(buyers, StringComparer.Ordinal);
                    _validUntil = validUntil;
                }
            }
        }

        public void LoadFailed()
        {
            lock (_gate)
            {
                _loading = false;
            }
        }
    }
}
