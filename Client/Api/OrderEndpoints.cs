using Microsoft.Extensions.Logging;

namespace OrleansFlashSale.Client.Api;

/// <summary>Body of <c>POST /api/orders/{id}/pay</c> and <c>/cancel</c>: the buyer must name themselves.</summary>
public sealed record OrderActionBody(string? UserId);

public static class OrderEndpoints
{
    public static IEndpointRouteBuilder MapFlashSaleOrders(this IEndpointRouteBuilder app)
    {
        var orders = app.MapGroup("/api/orders");
        orders.MapGet("/{orderId}", GetAsync);
        orders.MapPost("/{orderId}/pay", (string orderId, HttpRequest request, JsonBody json, BuyerAuth buyers, IGrainFactory grains, ILoggerFactory logs) =>
            ActAsync(orderId, request, json, buyers, logs, (g, user) => g.PayAsync(orderId, user), grains));
        orders.MapPost("/{orderId}/cancel", (string orderId, HttpRequest request, JsonBody json, BuyerAuth buyers, IGrainFactory grains, ILoggerFactory logs) =>
            ActAsync(orderId, request, json, buyers, logs, (g, user) => g.CancelAsync(orderId, user), grains));
        return app;
    }

    internal static async Task<IResult> GetAsync(string orderId, HttpContext context, BuyerAuth buyers, IGrainFactory grains, ILoggerFactory logs)
    {
        if (SaleRules.ValidateId(orderId, "orderId") is { } error)
        {
            return Problems.Invalid(error);
        }

        // In jwt mode an order is shown to its buyer only.
        string? buyer = null;
        if (buyers.IsJwt)
        {
            (buyer, var denied) = await buyers.AuthenticateAsync(context);
            if (denied is not null)
            {
                return denied;
            }
        }

        return await SaleEndpoints.GuardAsync(logs, async () =>
            await grains.GetGrain<IOrdersGrain>(0).GetAsync(orderId) is not { } order
                ? Problems.Create(StatusCodes.Status404NotFound, ErrorCodes.UnknownOrder)
                : buyer is not null && !string.Equals(buyer, order.UserId, StringComparison.Ordinal)
                    ? Problems.Create(StatusCodes.Status403Forbidden, ErrorCodes.NotYourOrder)
                    : TypedResults.Ok(OrderView.From(order)));
    }

    private static async Task<IResult> ActAsync(string orderId, HttpRequest request, JsonBody json, BuyerAuth buyers, ILoggerFactory logs,
        Func<IOrdersGrain, string, Task<OrderActionResult>> action, IGrainFactory grains)
    {
        if (SaleRules.ValidateId(orderId, "orderId") is { } error)
        {
            return Problems.Invalid(error);
        }

        var (body, problem) = await json.ReadAsync<OrderActionBody>(request);
        if (problem is not null)
        {
            return problem;
        }

        var (userId, denied) = await buyers.ResolveAsync(request.HttpContext, body!.UserId);
        if (denied is not null)
        {
            return denied;
        }

        if (SaleRules.ValidateId(userId, "userId") is { } userError)
        {
            return Problems.Invalid(userError);
        }

        return await SaleEndpoints.GuardAsync(logs, async () =>
        {
            var result = await action(grains.GetGrain<IOrdersGrain>(0), userId!);
            return result.Outcome switch
            {
                OrderActionOutcome.Done or OrderActionOutcome.AlreadyDone => TypedResults.Ok(OrderView.From(result.Order!)),
                OrderActionOutcome.NotFound => Problems.Create(StatusCodes.Status404NotFound, ErrorCodes.UnknownOrder),
                OrderActionOutcome.Forbidden => Problems.Create(StatusCodes.Status403Forbidden, ErrorCodes.NotYourOrder),
                _ => Problems.Create(StatusCodes.Status409Conflict, result.Code ?? ErrorCodes.OrderNotReady),
            };
        });
    }
}
