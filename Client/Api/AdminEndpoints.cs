using Microsoft.Extensions.Logging;

namespace OrleansFlashSale.Client.Api;

/// <summary>Operator endpoints over the reconciliation grain: the list of sales and the books of one.</summary>
public static partial class SaleEndpoints
{
    internal static async Task<IResult> ListSalesAsync(HttpRequest request, AdminAuth auth, IGrainFactory grains, ILoggerFactory logs)
    {
        if (auth.Check(request) is { } denied)
        {
            return denied;
        }

        return await GuardAsync(logs, async () =>
            TypedResults.Ok(new { skus = await grains.GetGrain<IReconciliationGrain>(0).ListSkusAsync() }));
    }

    internal static async Task<IResult> GetWriterPaceAsync(HttpRequest request, AdminAuth auth, IGrainFactory grains, ILoggerFactory logs)
    {
        if (auth.Check(request) is { } denied)
        {
            return denied;
        }

        return await GuardAsync(logs, async () =>
            TypedResults.Ok(WriterPaceView.From(await grains.GetGrain<IWriterPaceGrain>(0).GetAsync())));
    }

    internal static async Task<IResult> SetWriterPaceAsync(HttpRequest request, AdminAuth auth, JsonBody json, IGrainFactory grains, ILoggerFactory logs)
    {
        if (auth.Check(request) is { } denied)
        {
            return denied;
        }

        var (body, problem) = await json.ReadAsync<WriterPaceBody>(request);
        if (problem is not null)
        {
            return problem;
        }

        if (body!.MaxOrdersPerSecond is not { } pace)
        {
            return Problems.Invalid("maxOrdersPerSecond is required (0 = full speed)");
        }

        if (WriterPace.Validate(pace) is { } error)
        {
            return Problems.Invalid(error);
        }

        return await GuardAsync(logs, async () =>
            TypedResults.Ok(WriterPaceView.From(await grains.GetGrain<IWriterPaceGrain>(0).SetAsync(pace))));
    }

    internal static async Task<IResult> VerifyAsync(string sku, HttpRequest request, AdminAuth auth, IGrainFactory grains, ILoggerFactory logs)
    {
        if (auth.Check(request) is { } denied)
        {
            return denied;
        }

        if (!SaleRules.IsValidSku(sku))
        {
            return Problems.Invalid("sku must be 1-64 characters of A-Z a-z 0-9 . _ -");
        }

        // Parsed by hand so a bad value is a problem+json 400 with a code, not the framework's bare 400.
        var text = request.Query["repair"].ToString();
        bool repair;
        if (text.Length == 0)
        {
            repair = false;
        }
        else if (!bool.TryParse(text, out repair))
        {
            return Problems.Invalid("repair must be true or false");
        }

        return await GuardAsync(logs, async () =>
        {
            ReconciliationReport? report;
            try
            {
                report = await grains.GetGrain<IReconciliationGrain>(0).VerifyAsync(sku, repair);
            }
            catch (Exception ex) when (ex is DependencyUnavailableException || ex is not (OrleansException or TimeoutException or InvalidOperationException or OperationCanceledException))
            {
                // Redis, NATS or MySQL failed inside the grain: still a problem+json with a code, never a bare 500.
                LogVerifyFailure(logs.CreateLogger("OrleansFlashSale.Gateway"), ex, sku);
                return Problems.Create(StatusCodes.Status503ServiceUnavailable, ErrorCodes.Unavailable,
                    $"verify could not read every store ({(ex is DependencyUnavailableException d ? d.Dependency : ex.GetType().Name)}); retry");
            }

            return report is null
                ? Problems.Create(StatusCodes.Status404NotFound, ErrorCodes.UnknownSale)
                : TypedResults.Ok(report);
        });
    }

    [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "Verify {Sku} failed; answered 503")]
    private static partial void LogVerifyFailure(ILogger logger, Exception exception, string sku);
}
