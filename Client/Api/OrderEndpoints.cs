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
        orders.MapPost("/{orderId}/pay", (string orderId, HttpRequest request, JsonBody json, IGrainFactory grains, ILoggerFactory logs) =>
            ActAsync(orderId, request, json, logs, (g, user) => g.PayAsync(orderId, user), grains));
        orders.MapPost("/{orderId}/cancel", (string orderId, HttpRequest request, JsonBody json, IGrainFactory grains, ILoggerFactory logs) =>
            ActAsync(orderId, request, json, logs, (g, user) => g.CancelAsync(orderId, user), grains));
        return app;
    }

    internal static async Task<IResult> GetAsync(string orderId, IGrainFactory grains, ILoggerFactory logs)
    {
        if (SaleRules.ValidateId(orderId, "orderId") is { } error)
        {
            return Problems.Invalid(error);
        }

        return await SaleEndpoints.GuardAsync(logs, async () =>
            await grains.GetGrain<IOrdersGrain>(0).GetAsync(orderId) is { } order
                ? TypedResults.Ok(OrderView.From(order))
                : Problems.Create(StatusCodes.Status404NotFound, ErrorCodes.UnknownOrder));
    }

    private static async Task<IResult> ActAsync(string orderId, HttpRequest request, JsonBody json, ILoggerFactory logs,
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

        if (SaleRules.ValidateId(body!.UserId, "userId") is { } userError)
        {
            return Problems.Invalid(userError);
        }

        return await SaleEndpoints.GuardAsync(logs, async () =>
        {
            var result = await action(grains.GetGrain<IOrdersGrain>(0), body.UserId!);
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
