using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace OrleansFlashSale.Client.Api;

/// <summary>
/// Reads a JSON body strictly: application/json only, bounded size, no duplicate or unknown members, numbers as
/// numbers. Minimal APIs' own binding answers malformed JSON with an empty 400; this gives a problem with a code.
/// </summary>
public sealed class JsonBody(IOptions<GatewayOptions> options)
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        AllowDuplicateProperties = false,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        NumberHandling = JsonNumberHandling.Strict,
    };

    public async Task<(T? Value, ProblemHttpResult? Problem)> ReadAsync<T>(HttpRequest request)
        where T : class
    {
        if (!request.HasJsonContentType())
        {
            return (null, Problems.Create(StatusCodes.Status415UnsupportedMediaType, ErrorCodes.UnsupportedMediaType));
        }

        var limit = options.Value.MaxBodyBytes;
        if (request.ContentLength > limit)
        {
            return (null, Problems.Create(StatusCodes.Status413PayloadTooLarge, ErrorCodes.PayloadTooLarge, $"at most {limit} bytes"));
        }

        var body = await RequestBody.ReadAsync(request.HttpContext, limit);
        if (body.TooLarge)
        {
            return (null, Problems.Create(StatusCodes.Status413PayloadTooLarge, ErrorCodes.PayloadTooLarge, $"at most {limit} bytes"));
        }

        try
        {
            var value = JsonSerializer.Deserialize<T>(body.Span, Options);
            return value is null ? (null, Problems.Invalid("the body must be a JSON object")) : (value, null);
        }
        catch (JsonException ex)
        {
            return (null, Problems.Invalid($"malformed JSON: {ex.Message}"));
        }
    }
}
