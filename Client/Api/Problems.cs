using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace OrleansFlashSale.Client.Api;

/// <summary>Machine-readable error codes; every error response is RFC 7807 problem+json with a <c>code</c> member.</summary>
public static class ErrorCodes
{
    public const string InvalidRequest = "invalid_request";
    public const string UnsupportedMediaType = "unsupported_media_type";
    public const string PayloadTooLarge = "payload_too_large";
    public const string SaleExists = "sale_exists";
    public const string UnknownSale = "unknown_sale";
    public const string SoldOut = "sold_out";
    public const string LimitExceeded = "limit_exceeded";
    public const string NotStarted = "not_started";
    public const string Ended = "ended";
    public const string Unauthorized = "unauthorized";
    public const string Forbidden = "forbidden";
    public const string Unavailable = "unavailable";
    public const string RateLimited = "rate_limited";
    public const string Overloaded = "overloaded";
    public const string UnknownOrder = "unknown_order";
    public const string NotYourOrder = "not_your_order";
    public const string OrderNotReady = "order_not_ready";
    public const string OrderPaid = "order_paid";
    public const string OrderCancelled = "order_cancelled";
    public const string OrderExpired = "order_expired";
    public const string OrleansDashboardOff = "orleans_dashboard_off";
}

public static class Problems
{
    private static readonly Dictionary<string, string> Titles = new()
    {
        [ErrorCodes.InvalidRequest] = "The request is not valid.",
        [ErrorCodes.UnsupportedMediaType] = "The body must be application/json.",
        [ErrorCodes.PayloadTooLarge] = "The body is too large.",
        [ErrorCodes.SaleExists] = "A sale for this SKU exists already.",
        [ErrorCodes.UnknownSale] = "No sale exists for this SKU.",
        [ErrorCodes.SoldOut] = "The sale is sold out.",
        [ErrorCodes.LimitExceeded] = "The per-user limit would be exceeded.",
        [ErrorCodes.NotStarted] = "The sale has not started yet.",
        [ErrorCodes.Ended] = "The sale has ended.",
        [ErrorCodes.Unauthorized] = "An admin bearer token is required.",
        [ErrorCodes.Forbidden] = "The token is not allowed to do this.",
        [ErrorCodes.Unavailable] = "The service cannot answer right now; retry with the same requestId.",
        [ErrorCodes.RateLimited] = "Too many requests; retry after the Retry-After delay.",
        [ErrorCodes.Overloaded] = "The gateway is at capacity; retry after the Retry-After delay with the same requestId.",
        [ErrorCodes.UnknownOrder] = "No order has this id.",
        [ErrorCodes.NotYourOrder] = "The order belongs to another buyer.",
        [ErrorCodes.OrderNotReady] = "The order is reserved but not yet recorded; retry in a moment.",
        [ErrorCodes.OrderPaid] = "The order is paid.",
        [ErrorCodes.OrderCancelled] = "The order was cancelled.",
        [ErrorCodes.OrderExpired] = "The order expired unpaid.",
        [ErrorCodes.OrleansDashboardOff] = "The Orleans dashboard is not enabled on this gateway.",
    };

    public static string TitleOf(string code) => Titles.GetValueOrDefault(code, code);

    public static string TypeOf(string code) => $"https://orleans-flashsale.dev/problems/{code}";

    public static ProblemHttpResult Create(int status, string code, string? detail = null, IDictionary<string, object?>? extra = null)
    {
        var problem = new ProblemDetails
        {
            Status = status,
            Title = TitleOf(code),
            Detail = detail,
            Type = TypeOf(code),
        };
        problem.Extensions["code"] = code;
        if (extra is not null)
        {
            foreach (var (key, value) in extra)
            {
                problem.Extensions[key] = value;
            }
        }

        return TypedResults.Problem(problem);
    }

    public static ProblemHttpResult Invalid(string detail) => Create(StatusCodes.Status400BadRequest, ErrorCodes.InvalidRequest, detail);
}

/// <summary>
/// Where a request's middleware learns the <c>code</c> of the problem it was answered with (the dashboard's purchase
/// counter). Problems written by the problem details service fill it in its customisation hook; answers written
/// without that service, such as <see cref="SoldOutProblem"/>, fill it themselves.
/// </summary>
public interface IProblemCodeFeature
{
    string? Code { get; set; }
}
