using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.OpenApi;
using OrleansFlashSale.Client.Api;

namespace OrleansFlashSale.Tests;

/// <summary>The gateway's OpenAPI document against the endpoints the gateway really maps.</summary>
[Collection(TelemetryCollection.Name)]
public sealed class OpenApiTests(TelemetryFixture fixture)
{
    [Fact]
    public async Task The_document_parses_and_describes_every_endpoint_with_its_problem_answers()
    {
        var response = await fixture.Http.GetAsync(OpenApiDescription.DocumentPath);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = await response.Content.ReadAsStringAsync();
        var read = OpenApiDocument.Parse(json, "json");
        Assert.Empty(read.Diagnostic?.Errors ?? []);
        var document = read.Document!;
        Assert.Equal("v1", document.Info.Version);

        // Every API endpoint with an HTTP method that the gateway maps (pages such as /docs and /dashboard are not API).
        var mapped = fixture.GatewayServices.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.Metadata.GetMetadata<HttpMethodMetadata>() is not null)
            .SelectMany(e => e.Metadata.GetMetadata<HttpMethodMetadata>()!.HttpMethods.Select(m => (Method: m, Path: "/" + e.RoutePattern.RawText!.TrimStart('/'))))
            .Where(e => e.Path.StartsWith("/api/", StringComparison.Ordinal))
            .ToArray();
        // The document holds the API and the health probes, nothing else.
        Assert.All(document.Paths.Keys, p => Assert.True(p.StartsWith("/api/", StringComparison.Ordinal) || p.StartsWith("/health/", StringComparison.Ordinal), p));
        Assert.Equal(mapped.Length + 2, document.Paths.Values.Sum(i => i.Operations!.Count));
        Assert.Equal(ApiCatalog.Operations.Length, mapped.Length);
        foreach (var (method, path) in mapped)
        {
            Assert.True(document.Paths.TryGetValue(path, out var item), $"{path} is not in the document");
            var operation = item!.Operations![new HttpMethod(method)];
            var entry = ApiCatalog.Find(method, path);
            Assert.NotNull(entry);
            Assert.Equal(entry.Summary, operation.Summary);
            Assert.Equal(entry.Body is not null, operation.RequestBody?.Content?.ContainsKey("application/json") ?? false);
            foreach (var success in entry.Success)
            {
                Assert.True(operation.Responses!.ContainsKey(success.Status.ToString(System.Globalization.CultureInfo.InvariantCulture)), $"{method} {path}: no {success.Status}");
            }

            // Every error answer is problem+json with the codes the endpoint can give; what takes input can refuse it.
            var errors = operation.Responses!.Where(r => r.Key.StartsWith('4') || r.Key.StartsWith('5')).ToArray();
            Assert.NotEmpty(errors);
            if (entry.Body is not null || path.Contains('{', StringComparison.Ordinal))
            {
                Assert.Contains(errors, r => r.Key == "400");
            }
            foreach (var (status, error) in errors)
            {
                var schema = error.Content!["application/problem+json"].Schema!;
                var codes = schema.Properties!["code"].Enum!.Select(c => c!.GetValue<string>()).ToArray();
                Assert.NotEmpty(codes);
                Assert.Equal(entry.Errors().Single(e => e.Status.ToString(System.Globalization.CultureInfo.InvariantCulture) == status).Codes, codes);
            }
        }

        var purchase = document.Paths["/api/sales/{sku}/purchases"].Operations![HttpMethod.Post];
        Assert.Equal(["ended", "limit_exceeded", "not_started", "sold_out"],
            purchase.Responses!["409"].Content!["application/problem+json"].Schema!.Properties!["code"].Enum!.Select(c => c!.GetValue<string>()));
        Assert.Equal(["userId", "quantity", "requestId", "purchaseToken"], purchase.RequestBody!.Content!["application/json"].Schema!.Properties!.Keys);
        Assert.True(document.Paths.ContainsKey("/health/ready"));
        Assert.True(document.Paths.ContainsKey("/health/live"));
    }

    [Fact]
    public async Task The_docs_page_is_served_without_anything_from_elsewhere()
    {
        var response = await fixture.Http.GetAsync(OpenApiDescription.PagePath);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
        var html = await response.Content.ReadAsStringAsync();
        Assert.Contains("fetch(\"/openapi/v1.json\")", html, StringComparison.Ordinal);
        Assert.DoesNotContain("http://", html, StringComparison.Ordinal);
        Assert.DoesNotContain("https://", html, StringComparison.Ordinal);
        Assert.DoesNotContain("src=", html, StringComparison.Ordinal);
    }
}
