using System.Diagnostics;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using OrleansFlashSale.Client.Api;

namespace OrleansFlashSale.Tests;

/// <summary>The prepared sold-out answer is the problem details answer the gateway wrote before, byte for byte.</summary>
public sealed class SoldOutProblemTests
{
    [Fact]
    public async Task The_prepared_sold_out_problem_matches_the_one_ASP_NET_writes()
    {
        await using var services = new ServiceCollection().AddLogging().AddProblemDetails().BuildServiceProvider();
        using var activity = new Activity("purchase").SetIdFormat(ActivityIdFormat.W3C).Start();

        var (status, type, body) = await RunAsync(services, Problems.Create(StatusCodes.Status409Conflict, ErrorCodes.SoldOut));
        var (cachedStatus, cachedType, cachedBody) = await RunAsync(services, SoldOutProblem.Instance);

        Assert.Equal(409, status);
        Assert.Equal(status, cachedStatus);
        Assert.Equal(type, cachedType);
        Assert.Contains(activity.Id!, body, StringComparison.Ordinal);
        Assert.Equal(body, cachedBody);
    }

    [Fact]
    public async Task Without_an_activity_the_trace_id_is_the_request_s()
    {
        await using var services = new ServiceCollection().AddLogging().AddProblemDetails().BuildServiceProvider();
        Assert.Null(Activity.Current);

        var (_, _, body) = await RunAsync(services, Problems.Create(StatusCodes.Status409Conflict, ErrorCodes.SoldOut), "request-7");
        var (_, _, cachedBody) = await RunAsync(services, SoldOutProblem.Instance, "request-7");

        Assert.Contains("\"traceId\":\"request-7\"", cachedBody, StringComparison.Ordinal);
        Assert.Equal(body, cachedBody);
    }

    [Fact]
    public async Task The_code_is_noted_for_the_purchase_counter_as_the_problem_details_service_would()
    {
        await using var services = new ServiceCollection().AddLogging().AddProblemDetails().BuildServiceProvider();
        var context = new DefaultHttpContext { RequestServices = services, Response = { Body = new MemoryStream() } };
        var feature = new CodeFeature();
        context.Features.Set<IProblemCodeFeature>(feature);

        await SoldOutProblem.Instance.ExecuteAsync(context);

        Assert.Equal(ErrorCodes.SoldOut, feature.Code);
    }

    private static async Task<(int Status, string? ContentType, string Body)> RunAsync(IServiceProvider services, IResult result,
        string traceIdentifier = "request-1")
    {
        var context = new DefaultHttpContext { RequestServices = services, TraceIdentifier = traceIdentifier };
        await using var body = new MemoryStream();
        context.Response.Body = body;
        await result.ExecuteAsync(context);
        await context.Response.CompleteAsync();
        return (context.Response.StatusCode, context.Response.ContentType, Encoding.UTF8.GetString(body.ToArray()));
    }

    private sealed class CodeFeature : IProblemCodeFeature
    {
        public string? Code { get; set; }
    }
}
