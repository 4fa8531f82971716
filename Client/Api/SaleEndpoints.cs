using OrleansFlashSale.ClientLibrary;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Logging;

namespace OrleansFlashSale.Client.Api;

public static partial class SaleEndpoints
{
    public static IEndpointRouteBuilder MapFlashSaleApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api");
        api.MapPost("/sales", CreateSaleAsync);
        api.MapGet("/sales/{sku}", GetSaleAsync);
        api.MapPost("/sales/{sku}/purchases", PurchaseAsync);
        api.MapPut("/sales/{sku}/buckets", RebucketAsync);
        api.MapPost("/sales/{sku}/close", CloseAsync);
        api.MapGet("/admin/sales", ListSalesAsync);
        api.MapGet("/admin/writer", GetWriterPaceAsync);
        api.MapPut("/admin/writer", SetWriterPaceAsync);
        api.MapGet("/admin/verify/{sku}", VerifyAsync);
        app.MapFlashSaleOrders();
        app.MapFlashSaleOpenApi();
        app.MapFlashSaleSecurity();
        return app;
    }

    internal static async Task<IResult> CreateSaleAsync(HttpRequest request, AdminAuth auth, JsonBody json, PurchaseTokens tokens, IGrainFactory grains, ILoggerFactory logs)
    {
        if (auth.Check(request) is { } denied)
        {
            return denied;
        }

        var (body, problem) = await json.ReadAsync<CreateSaleBody>(request);
        if (problem is not null)
        {
            return problem;
        }

        if (body!.Sku is null || body.Stock is null || body.PerUserLimit is null)
        {
            return Problems.Invalid("sku, stock and perUserLimit are required");
        }

        // No more buckets than units: a small sale without a bucket count gets one per unit at most.
        var buckets = body.Buckets ?? (int)Math.Clamp(body.Stock.Value, 1, SaleRules.DefaultBuckets);
        var sale = new SaleDefinition(body.Sku, body.Stock.Value, buckets, body.PerUserLimit.Value,
            body.StartsAt, body.EndsAt, body.PaymentTimeoutSeconds ?? SaleRules.DefaultPaymentTimeoutSeconds,
            body.QuotaShards ?? SaleRules.DefaultQuotaShardsFor(buckets), body.Mode ?? SaleModes.Redis, body.RequirePurchaseToken ?? false);
        if (SaleRules.Validate(sale) is { } error)
        {
            return Problems.Invalid(error);
        }

        if (sale.RequirePurchaseToken && !tokens.Enabled)
        {
            return Problems.Invalid($"requirePurchaseToken needs {AuthOptions.Section}:PurchaseTokenKey on the gateway");
        }

        return await GuardAsync(logs, async () =>
        {
            var result = await grains.Product(sale.Sku).CreateAsync(sale);
            return result.Outcome switch
            {
                CreateSaleOutcome.Created => TypedResults.Created($"/api/sales/{sale.Sku}", SaleView.From(result.Sale!)),
                CreateSaleOutcome.Exists => Problems.Create(StatusCodes.Status409Conflict, ErrorCodes.SaleExists, result.Error),
                _ => Problems.Invalid(result.Error ?? "invalid sale"),
            };
        });
    }

    internal static async Task<IResult> GetSaleAsync(string sku, IGrainFactory grains, ILoggerFactory logs)
    {
        if (!SaleRules.IsValidSku(sku))
        {
            return Problems.Invalid("sku must be 1-64 characters of A-Z a-z 0-9 . _ -");
        }

        return await GuardAsync(logs, async () =>
        {
            var status = await grains.Product(sku).GetStatusAsync(refresh: false);
            return status is null
                ? Problems.Create(StatusCodes.Status404NotFound, ErrorCodes.UnknownSale)
                : TypedResults.Ok(SaleStatusView.From(status));
        });
    }

    internal static async Task<IResult> PurchaseAsync(string sku, HttpRequest request, JsonBody json, BuyerAuth buyers, PurchaseTokens tokens,
        SoldOutCache soldOut, PurchaseClient purchases, ILoggerFactory logs)
    {
        if (!SaleRules.IsValidSku(sku))
        {
            return Problems.Invalid("sku must be 1-64 characters of A-Z a-z 0-9 . _ -");
        }

        var (body, problem) = await json.ReadAsync<PurchaseBody>(request);
        if (problem is not null)
        {
            return problem;
        }

        var (userId, denied) = await buyers.ResolveAsync(request.HttpContext, body!.UserId);
        if (denied is not null)
        {
            return denied;
        }

        if ((SaleRules.ValidateId(userId, "userId") ?? SaleRules.ValidateId(body.RequestId, "requestId")) is { } idError)
        {
            return Problems.Invalid(idError);
        }

        if (body.Quantity is not { } quantity || quantity < 1)
        {
            return Problems.Invalid("quantity must be a whole number of at least 1");
        }

        return await GuardAsync(logs, async () =>
        {
            var sale = await purchases.GetSaleAsync(sku);
            if (sale is null)
            {
                return Problems.Create(StatusCodes.Status404NotFound, ErrorCodes.UnknownSale);
            }

            if (quantity > sale.PerUserLimit)
            {
                return Problems.Invalid($"quantity must be between 1 and {sale.PerUserLimit}");
            }

            if (SecurityEndpoints.CheckPurchaseToken(request, tokens, sale, userId!, body.PurchaseToken) is { } refused)
            {
                return refused;
            }

            if (soldOut.CanAnswerSoldOut(sale, userId!))
            {
                return SoldOutProblem.Instance;
            }

            var purchase = new PurchaseRequest(sku, userId!, body.RequestId!, quantity);
            var result = await purchases.PurchaseAsync(sale, purchase);
            soldOut.Observe(sale, purchase, result);
            return ToHttp(result);
        });
    }

    internal static async Task<IResult> RebucketAsync(string sku, HttpRequest request, AdminAuth auth, JsonBody json, IGrainFactory grains, ILoggerFactory logs)
    {
        if (auth.Check(request) is { } denied)
        {
            return denied;
        }

        if (!SaleRules.IsValidSku(sku))
        {
            return Problems.Invalid("sku must be 1-64 characters of A-Z a-z 0-9 . _ -");
        }

        var (body, problem) = await json.ReadAsync<RebucketBody>(request);
        if (problem is not null)
        {
            return problem;
        }

        if (body!.Buckets is not { } buckets)
        {
            return Problems.Invalid("buckets is required");
        }

        return await GuardAsync(logs, async () =>
        {
            var result = await grains.Product(sku).RebucketAsync(buckets);
            return result.Outcome switch
            {
                RebucketOutcome.Done or RebucketOutcome.Unchanged => TypedResults.Ok(SaleStatusView.From(result.Status!)),
                RebucketOutcome.UnknownSale => Problems.Create(StatusCodes.Status404NotFound, ErrorCodes.UnknownSale),
                _ => Problems.Invalid(result.Error ?? "invalid bucket count"),
            };
        });
    }

    internal static async Task<IResult> CloseAsync(string sku, HttpRequest request, AdminAuth auth, IGrainFactory grains, ILoggerFactory logs)
    {
        if (auth.Check(request) is { } denied)
        {
            return denied;
        }

        if (!SaleRules.IsValidSku(sku))
        {
            return Problems.Invalid("sku must be 1-64 characters of A-Z a-z 0-9 . _ -");
        }

        return await GuardAsync(logs, async () =>
        {
            var result = await grains.Product(sku).CloseAsync();
            return result.Sale is { } sale
                ? TypedResults.Ok(new ClosedSaleView(SaleView.From(sale), result.ClosedAt!.Value, result.RecordsExpiring))
                : Problems.Create(StatusCodes.Status404NotFound, ErrorCodes.UnknownSale);
        });
    }

    public static IResult ToHttp(PurchaseResult result)
    {
        var order = result.Order is { } o ? OrderView.From(o) : null;
        return result.Outcome switch
        {
            PurchaseOutcome.Created => TypedResults.Created($"/api/orders/{order!.OrderId}", order),
            PurchaseOutcome.Replayed => TypedResults.Ok(order),
            PurchaseOutcome.SoldOut when result.Detail is null => SoldOutProblem.Instance,
            PurchaseOutcome.SoldOut => Problems.Create(StatusCodes.Status409Conflict, ErrorCodes.SoldOut, result.Detail),
            PurchaseOutcome.LimitExceeded => Problems.Create(StatusCodes.Status409Conflict, ErrorCodes.LimitExceeded, result.Detail),
            PurchaseOutcome.NotStarted => Problems.Create(StatusCodes.Status409Conflict, ErrorCodes.NotStarted, result.Detail),
            PurchaseOutcome.Ended => Problems.Create(StatusCodes.Status409Conflict, ErrorCodes.Ended, result.Detail),
            PurchaseOutcome.UnknownSale => Problems.Create(StatusCodes.Status404NotFound, ErrorCodes.UnknownSale, result.Detail),
            PurchaseOutcome.Invalid => Problems.Invalid(result.Detail ?? "invalid request"),
            _ => Unavailable(result.Detail, order?.OrderId),
        };
    }

    private static ProblemHttpResult Unavailable(string? detail, string? orderId) =>
        Problems.Create(StatusCodes.Status503ServiceUnavailable, ErrorCodes.Unavailable, detail,
            orderId is null ? null : new Dictionary<string, object?> { ["orderId"] = orderId });

    /// <summary>A cluster that cannot answer gives a definite 503, never a hang or a bare 500.</summary>
    internal static async Task<IResult> GuardAsync(ILoggerFactory logs, Func<Task<IResult>> action)
    {
        try
        {
            return await action();
        }
        catch (Exception ex) when (ex is OrleansException or TimeoutException or InvalidOperationException or OperationCanceledException)
        {
            LogClusterFailure(logs.CreateLogger("OrleansFlashSale.Gateway"), ex);
            return Unavailable("the cluster did not answer; retry with the same requestId", null);
        }
    }

    [LoggerMessage(EventId = 3001, Level = LogLevel.Warning, Message = "A cluster call failed; answered 503")]
    private static partial void LogClusterFailure(ILogger logger, Exception exception);
}
