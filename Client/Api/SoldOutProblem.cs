using System.Buffers;
using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace OrleansFlashSale.Client.Api;

/// <summary>
/// The 409 <c>sold_out</c> problem written from bytes prepared once: the same JSON, member for member, that
/// <see cref="Problems.Create"/> and ASP.NET's problem details service write, with this request's <c>traceId</c>.
/// It does not go through that service: the gateway's only customisation of it (the <see cref="IProblemCodeFeature"/>
/// note) is applied here; one added later must be added here too.
/// </summary>
/// <remarks>
/// Once a sale is sold out nearly every request to it ends here, and the gateway answers it from its cache. Building
/// a <c>ProblemDetails</c> with its extension dictionary, serialising it through the object serialiser and creating
/// a logger per response was the bulk of what such a request allocated, and the garbage collector's work showed in
/// the gateway's CPU (docs/performance-history.md).
/// </remarks>
public sealed class SoldOutProblem : IResult
{
    public const string ContentType = "application/problem+json";

    private static readonly byte[] Prefix = Encoding.UTF8.GetBytes(
        "{\"type\":" + JsonSerializer.Serialize(Problems.TypeOf(ErrorCodes.SoldOut)) +
        ",\"title\":" + JsonSerializer.Serialize(Problems.TitleOf(ErrorCodes.SoldOut)) +
        ",\"status\":409,\"code\":\"" + ErrorCodes.SoldOut + "\",\"traceId\":");

    private static readonly byte[] Suffix = "}"u8.ToArray();

    public static SoldOutProblem Instance { get; } = new();

    private SoldOutProblem()
    {
    }

    public Task ExecuteAsync(HttpContext httpContext)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        // Where ASP.NET's problem details defaults take it from.
        var traceId = JsonSerializer.SerializeToUtf8Bytes(Activity.Current?.Id ?? httpContext.TraceIdentifier);
        // The one customisation the gateway registers with the problem details service, which this answer bypasses.
        if (httpContext.Features.Get<IProblemCodeFeature>() is { } outcome)
        {
            outcome.Code = ErrorCodes.SoldOut;
        }

        var response = httpContext.Response;
        response.StatusCode = StatusCodes.Status409Conflict;
        response.ContentType = ContentType;
        response.ContentLength = Prefix.Length + traceId.Length + Suffix.Length;
        var body = response.BodyWriter;
        body.Write(Prefix);
        body.Write(traceId);
        body.Write(Suffix);
        return body.FlushAsync(httpContext.RequestAborted).AsTask();
    }
}
