using Orleans.Runtime;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansFlashSale.Persistence;
using OrleansFlashSale.Redis;

namespace OrleansFlashSale.Grains;

/// <summary>
/// One per SKU. Owns the sale definition and the bucket layout, and knows which buckets still have stock.
/// </summary>
/// <remarks>
/// Live re-bucketing (drain and transfer): the plan is persisted first; then each source bucket's take script
/// atomically removes units (all of a removed bucket; a fair share of each old bucket when growing) and records the
/// amount under the transfer id; then give scripts add those units to the target buckets, again idempotent per
/// transfer id; then the new layout is persisted. Units in transit are in no bucket, so this grain is not
/// reentrant: routing questions wait the few milliseconds a plan takes instead of concluding "sold out".
/// </remarks>
public sealed class ProductGrain : Grain, IProductGrain
{
    private readonly IPersistentState<ProductState> _state;
    private readonly SaleClock _time;
    private readonly IInventoryStore _orders;
    private readonly IOrderLifecycleStore _lifecycle;
    private readonly ILogger<ProductGrain> _logger;
    private readonly RedisConnection _redis;
    private readonly DeductionOptions _deduction;
    private readonly SortedSet<int> _withStock = new();
    private bool _soldOut;

    public ProductGrain(
        [PersistentState("product", "flashsale")] IPersistentState<ProductState> state,
        SaleClock time,
        IInventoryStore orders,
        IOrderLifecycleStore lifecycle,
        RedisConnection redis,
        IOptions<DeductionOptions> deduction,
        ILogger<ProductGrain> logger)
    {
        _redis = redis;
        _deduction = deduction.Value;
        _state = state;
        _time = time;
        _orders = orders;
        _lifecycle = lifecycle;
        _logger = logger;
    }

    private string Sku => this.GetPrimaryKeyString();

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        ResetStockView();
        if (_state.State.PendingRebucket is not null)
        {
            await CompleteRebucketAsync();
        }
    }

    public async Task<CreateSaleResult> CreateAsync(SaleDefinition sale)
    {
        if (sale.Sku != Sku)
        {
            return new CreateSaleResult(CreateSaleOutcome.Invalid, null, "sku does not match the product");
        }

        if (SaleRules.Validate(sale) is { } error)
        {
            return new CreateSaleResult(CreateSaleOutcome.Invalid, null, error);
        }

        if (_state.State.Sale is { } existing)
        {
            return new CreateSaleResult(CreateSaleOutcome.Exists, existing, "a sale for this sku exists");
        }

        // Redis first, definition second: until the definition is stored the sale does not exist for buyers, and
        // a retry after a crash here simply sets the buckets again. A database sale has no Redis stock at all: the
        // inventory row is its only stock, and it has no bucket layout (BucketCount 0).
        var database = sale.Mode == SaleModes.Database;
        if (!database)
        {
            var parts = SaleRules.Split(sale.Stock, sale.Buckets);
            await Task.WhenAll(parts.Select((stock, i) => GrainFactory.Bucket(Sku, i).InitializeAsync(stock)));
        }

        await _orders.EnsureInventoryAsync(Sku, sale.Stock);
        await _lifecycle.SetPaymentTimeoutAsync(Sku, sale.PaymentTimeoutSeconds);
        var previous = _state.State;
        _state.State = new ProductState
        {
            Sale = sale,
            BucketCount = database ? 0 : sale.Buckets,
            HighestBucketCount = database ? 0 : sale.Buckets,
            LayoutVersion = 1,
        };
        try
        {
            await _state.WriteStateAsync();
        }
        catch
        {
            // Not stored, so the sale does not exist: this activation must not serve it either.
            _state.State = previous;
            throw;
        }
        ResetStockView();
        Log.SaleCreated(_logger, Sku, sale.Stock, sale.Buckets, sale.QuotaShards);
        return new CreateSaleResult(CreateSaleOutcome.Created, sale, null);
    }

    public Task<SaleDefinition?> GetDefinitionAsync() => Task.FromResult(_state.State.Sale);

    public Task<int> GetHighestBucketCountAsync() =>
        Task.FromResult(_state.State.Sale is null
            ? 0
            // A plan in progress may already have given units to buckets past the stored counts.
            : Math.Max(Math.Max(_state.State.HighestBucketCount, _state.State.BucketCount), _state.State.PendingRebucket?.ToCount ?? 0));

    public async Task<SaleStatus?> GetStatusAsync(bool refresh)
    {
        if (_state.State.Sale is null)
        {
            return null;
        }

        if (_state.State.PendingRebucket is not null)
        {
            await CompleteRebucketAsync();
        }

        return await BuildStatusAsync(refresh);
    }

    public async Task<BucketRouting?> GetRoutingAsync(int[] seenEmpty)
    {
        if (_state.State.Sale is not { } sale)
        {
            return null;
        }

        if (sale.Mode == SaleModes.Database)
        {
            // No buckets to route to; only MySQL knows whether stock is left, so never claim "sold out" here.
            return new BucketRouting(_state.State.LayoutVersion, 0, [], false, 0);
        }

        if (_state.State.PendingRebucket is not null)
        {
            await CompleteRebucketAsync();
        }

        foreach (var bucket in seenEmpty)
        {
            _withStock.Remove(bucket);
        }

        if (_withStock.Count == 0 && !_soldOut)
        {
            await ConfirmSoldOutAsync();
        }

        return Routing();
    }

    public Task BucketEmptiedAsync(int index)
    {
        _withStock.Remove(index);
        return Task.CompletedTask;
    }

    public Task BucketRefilledAsync(int index)
    {
        if (index < _state.State.BucketCount)
        {
            _withStock.Add(index);
            _soldOut = false;
        }

        return Task.CompletedTask;
    }

    public async Task<CloseSaleResult> CloseAsync()
    {
        if (_state.State.Sale is not { } sale)
        {
            return new CloseSaleResult(null, null, 0);
        }

        var closedAt = _state.State.ClosedAt ?? _time.UtcNow;
        if (_state.State.ClosedAt is null)
        {
            var closed = sale.EndsAt is { } end && end <= closedAt ? sale : sale with { EndsAt = closedAt };
            var previous = (_state.State.Sale, _state.State.ClosedAt);
            _state.State.Sale = closed;
            _state.State.ClosedAt = closedAt;
            try
            {
                await _state.WriteStateAsync();
            }
            catch
            {
                (_state.State.Sale, _state.State.ClosedAt) = previous;
                throw;
            }

            sale = closed;
            Log.SaleClosed(_logger, Sku, closedAt);
        }

        // Buckets and quota grains keep the definition they loaded; they must refuse purchases from now on before
        // the records lose their forever, or a purchase in flight could write one the scan below has passed.
        var buckets = sale.Mode == SaleModes.Database ? 0 : await GetHighestBucketCountAsync();
        await Task.WhenAll(Enumerable.Range(0, buckets).Select(i => GrainFactory.Bucket(Sku, i).SaleChangedAsync(sale))
            .Concat(Enumerable.Range(0, sale.QuotaShards).Select(i => GrainFactory.Quota(Sku, i).SaleChangedAsync(sale))));
        var expiring = sale.Mode == SaleModes.Database
            ? 0
            : await SaleRecordExpiry.ExpireAsync(await _redis.GetMultiplexerAsync(), Sku,
                SaleLifetime.AfterClose(sale, _deduction.RecordTtl), CancellationToken.None);
        return new CloseSaleResult(sale, closedAt, expiring);
    }

    public async Task<RebucketResult> RebucketAsync(int buckets)
    {
        if (_state.State.Sale is not { } sale)
        {
            return new RebucketResult(RebucketOutcome.UnknownSale, null, null);
        }

        if (sale.Mode == SaleModes.Database)
        {
            return new RebucketResult(RebucketOutcome.Invalid, null, "a database-mode sale has no buckets");
        }

        if (SaleRules.ValidateBucketCount(buckets, sale.Stock) is { } error)
        {
            return new RebucketResult(RebucketOutcome.Invalid, null, error);
        }

        if (_state.State.PendingRebucket is not null)
        {
            await CompleteRebucketAsync();
        }

        var from = _state.State.BucketCount;
        if (buckets == from)
        {
            return new RebucketResult(RebucketOutcome.Unchanged, await BuildStatusAsync(refresh: false), null);
        }

        var version = _state.State.LayoutVersion + 1;
        RebucketPlan plan;
        if (buckets < from)
        {
            // Shrink: every removed bucket gives all it has to bucket (index mod new count).
            var sources = Enumerable.Range(buckets, from - buckets).ToArray();
            plan = new RebucketPlan(from, buckets, version, sources, sources.Select(_ => -1L).ToArray());
        }
        else
        {
            // Grow: each old bucket gives the share that would have been the new buckets', pooled and split evenly.
            var remaining = await Task.WhenAll(Enumerable.Range(0, from)
                .Select(i => GrainFactory.Bucket(Sku, i).GetRemainingAsync(refresh: true)));
            var amounts = remaining.Select(r => r * (buckets - from) / buckets).ToArray();
            plan = new RebucketPlan(from, buckets, version, Enumerable.Range(0, from).ToArray(), amounts);
        }

        Log.Rebucketing(_logger, Sku, from, buckets, version);
        _state.State.PendingRebucket = plan;
        await _state.WriteStateAsync();
        await CompleteRebucketAsync();
        return new RebucketResult(RebucketOutcome.Done, await BuildStatusAsync(refresh: false), null);
    }

    private async Task CompleteRebucketAsync()
    {
        var plan = _state.State.PendingRebucket!;
        var transferId = $"v{plan.Version}";
        try
        {
            var taken = await Task.WhenAll(plan.Sources.Select((source, i) =>
                GrainFactory.Bucket(Sku, source).TakeAsync(transferId, plan.Amounts[i])));
            var gifts = new Dictionary<int, long>();
            if (plan.ToCount < plan.FromCount)
            {
                for (var i = 0; i < plan.Sources.Length; i++)
                {
                    var target = plan.Sources[i] % plan.ToCount;
                    gifts[target] = gifts.GetValueOrDefault(target) + taken[i];
                }
            }
            else
            {
                // New buckets get a give even of 0 units: it creates their stock key.
                var parts = SaleRules.Split(taken.Sum(), plan.ToCount - plan.FromCount);
                for (var i = 0; i < parts.Length; i++)
                {
                    gifts[plan.FromCount + i] = parts[i];
                }
            }

            await Task.WhenAll(gifts.Select(g => GrainFactory.Bucket(Sku, g.Key).GiveAsync(transferId, g.Value)));
            _state.State.BucketCount = plan.ToCount;
            _state.State.HighestBucketCount = Math.Max(_state.State.HighestBucketCount, plan.ToCount);
            _state.State.LayoutVersion = plan.Version;
            _state.State.PendingRebucket = null;
            await _state.WriteStateAsync();
            ResetStockView();
            Log.Rebucketed(_logger, Sku, plan.ToCount, taken.Sum());
        }
        catch (Exception ex)
        {
            Log.RebucketFailed(_logger, ex, Sku);
            throw;
        }
    }

    /// <summary>Before saying "sold out", ask Redis about every bucket: the empty reports are only hints.</summary>
    private async Task ConfirmSoldOutAsync()
    {
        var count = _state.State.BucketCount;
        var remaining = await Task.WhenAll(Enumerable.Range(0, count)
            .Select(i => GrainFactory.Bucket(Sku, i).GetRemainingAsync(refresh: true)));
        for (var i = 0; i < count; i++)
        {
            if (remaining[i] > 0)
            {
                _withStock.Add(i);
            }
        }

        if (_withStock.Count == 0)
        {
            _soldOut = true;
            Log.SoldOut(_logger, Sku);
        }
    }

    private void ResetStockView()
    {
        _withStock.Clear();
        for (var i = 0; i < _state.State.BucketCount; i++)
        {
            _withStock.Add(i);
        }

        _soldOut = false;
    }

    private BucketRouting Routing() => new(
        _state.State.LayoutVersion,
        _state.State.BucketCount,
        _withStock.ToArray(),
        _soldOut,
        _state.State.HighestBucketCount);

    private async Task<SaleStatus> BuildStatusAsync(bool refresh)
    {
        var sale = _state.State.Sale!;
        if (sale.Mode == SaleModes.Database)
        {
            var available = await _orders.GetAvailableAsync(Sku) ?? 0;
            return new SaleStatus(sale, available, sale.Stock - available, State(sale, available), [], _state.State.LayoutVersion, 0);
        }

        var remaining = await Task.WhenAll(Enumerable.Range(0, _state.State.HighestBucketCount)
            .Select(i => GrainFactory.Bucket(Sku, i).GetRemainingAsync(refresh)));
        var total = remaining.Sum();
        var buckets = remaining.Take(_state.State.BucketCount).Select((r, i) => new BucketStatus(i, r)).ToArray();
        return new SaleStatus(sale, total, sale.Stock - total, State(sale, total), buckets, _state.State.LayoutVersion, 0);
    }

    private string State(SaleDefinition sale, long remaining)
    {
        var now = _time.UtcNow;
        return sale.EndsAt is { } end && now >= end ? SaleStates.Ended
            : sale.StartsAt is { } start && now < start ? SaleStates.Scheduled
            : remaining == 0 ? SaleStates.SoldOut
            : SaleStates.Active;
    }
}
