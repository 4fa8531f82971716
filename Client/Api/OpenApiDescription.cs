using System.Text.Json.Nodes;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace OrleansFlashSale.Client.Api;

/// <summary>
/// The OpenAPI document of the HTTP API (<c>/openapi/v1.json</c>) and a page that renders it (<c>/docs</c>). The
/// endpoints read their bodies themselves (to answer every bad body with problem+json), so ASP.NET Core cannot infer
/// bodies and answers: <see cref="ApiCatalog"/> states them, and the transformers below put them in the document.
/// </summary>
public static class OpenApiDescription
{
    public const string DocumentPath = "/openapi/v1.json";
    public const string PagePath = "/docs";

    public static IServiceCollection AddFlashSaleOpenApi(this IServiceCollection services) =>
        services.AddOpenApi(options =>
        {
            options.AddDocumentTransformer((document, _, _) =>
            {
                document.Info = new OpenApiInfo
                {
                    Title = "OrleansFlashSale gateway",
                    Version = "v1",
                    Description = "Flash-sale HTTP API. Every error is application/problem+json with a machine-readable `code`. "
                        + "Admin operations need `Authorization: Bearer <FlashSale:Gateway:AdminToken>`.",
                };
                // HTML pages (this one, the dashboard) are for browsers, not API clients.
                foreach (var page in document.Paths.Keys.Where(p => !p.StartsWith("/api/", StringComparison.Ordinal)).ToList())
                {
                    document.Paths.Remove(page);
                }

                AddHealthPaths(document);
                return Task.CompletedTask;
            });
            options.AddOperationTransformer(DescribeAsync);
        });

    public static IEndpointRouteBuilder MapFlashSaleOpenApi(this IEndpointRouteBuilder app)
    {
        app.MapOpenApi("/openapi/{documentName}.json");
        app.MapGet(PagePath, () => Results.Content(ApiDocsPage.Html, "text/html; charset=utf-8")).ExcludeFromDescription();
        return app;
    }

    private static async Task DescribeAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        var description = context.Description;
        if (ApiCatalog.Find(description.HttpMethod ?? "", "/" + description.RelativePath) is not { } entry)
        {
            return;
        }

        operation.Summary = entry.Summary;
        operation.Description = entry.Admin ? "Admin: needs the admin bearer token." : null;
        if (entry.Body is { } body)
        {
            operation.RequestBody = new OpenApiRequestBody
            {
                Required = true,
                Content = new Dictionary<string, OpenApiMediaType>
                {
                    ["application/json"] = new() { Schema = await context.GetOrCreateSchemaAsync(body, null, cancellationToken) },
                },
            };
        }

        operation.Responses = new OpenApiResponses();
        foreach (var success in entry.Success)
        {
            var response = new OpenApiResponse { Description = success.Description };
            if (success.Type is { } type)
            {
                response.Content = new Dictionary<string, OpenApiMediaType>
                {
                    ["application/json"] = new() { Schema = await context.GetOrCreateSchemaAsync(type, null, cancellationToken) },
                };
            }

            operation.Responses[success.Status.ToString(System.Globalization.CultureInfo.InvariantCulture)] = response;
        }

        foreach (var (status, codes) in entry.Errors())
        {
            operation.Responses[status.ToString(System.Globalization.CultureInfo.InvariantCulture)] = new OpenApiResponse
            {
                Description = "Problem: " + string.Join(", ", codes),
                Content = new Dictionary<string, OpenApiMediaType> { ["application/problem+json"] = new() { Schema = ProblemSchema(codes) } },
            };
        }
    }

    /// <summary>RFC 7807 problem details as Problems.Create writes them, with the codes this answer can carry.</summary>
    internal static OpenApiSchema ProblemSchema(IEnumerable<string> codes) => new()
    {
        Type = JsonSchemaType.Object,
        Required = new HashSet<string> { "status", "code" },
        Properties = new Dictionary<string, IOpenApiSchema>
        {
            ["type"] = new OpenApiSchema { Type = JsonSchemaType.String },
            ["title"] = new OpenApiSchema { Type = JsonSchemaType.String },
            ["status"] = new OpenApiSchema { Type = JsonSchemaType.Integer },
            ["detail"] = new OpenApiSchema { Type = JsonSchemaType.String },
            ["code"] = new OpenApiSchema { Type = JsonSchemaType.String, Enum = codes.Select(c => (JsonNode)JsonValue.Create(c)).ToList() },
        },
    };

    private static void AddHealthPaths(OpenApiDocument document)
    {
        document.Paths ??= new OpenApiPaths();
        foreach (var (path, summary) in new[]
        {
            ("/health/live", "Liveness: 200 while the process runs."),
            ("/health/ready", "Readiness: 200 when a grain call goes through the cluster and back, 503 otherwise."),
        })
        {
            var operation = new OpenApiOperation
            {
                Summary = summary,
                Responses = new OpenApiResponses
                {
                    ["200"] = new OpenApiResponse { Description = "Healthy", Content = PlainText() },
                    ["503"] = new OpenApiResponse { Description = "Unhealthy", Content = PlainText() },
                },
            };
            document.Paths[path] = new OpenApiPathItem { Operations = new Dictionary<HttpMethod, OpenApiOperation> { [HttpMethod.Get] = operation } };
        }
    }

    private static Dictionary<string, OpenApiMediaType> PlainText() =>
        new() { ["text/plain"] = new() { Schema = new OpenApiSchema { Type = JsonSchemaType.String } } };
}
