using Microsoft.Extensions.Logging;

namespace OrleansFlashSale.Silo;

/// <summary>
/// Turns a Redis, MySQL or NATS driver exception that escapes a grain call into a
/// <see cref="DependencyUnavailableException"/>, after logging the original with the grain's id. The drivers' types
/// have no Orleans codec, so without this the caller got a serialisation error in place of the real cause (seen as
/// <c>CodecNotFoundException</c> while a Redis master failed over).
/// </summary>
internal sealed partial class DependencyExceptionFilter(ILogger<DependencyExceptionFilter> logger) : IIncomingGrainCallFilter
{
    public async Task Invoke(IIncomingGrainCallContext context)
    {
        try
        {
            await context.Invoke();
        }
        catch (Exception ex) when (DriverFailure(ex) is var (dependency, cause))
        {
            LogConverted(logger, ex, context.TargetId.ToString(), context.InterfaceMethod?.Name ?? "?", dependency);
            throw new DependencyUnavailableException(dependency, cause.GetType().FullName ?? cause.GetType().Name, cause.Message);
        }
    }

    /// <summary>
    /// The first driver exception in the chain and its store, or null when there is none. Wrapped ones count too:
    /// the grain storage provider throws its own exception around MySqlConnector's, and that inner one has no codec
    /// either.
    /// </summary>
    internal static (string Dependency, Exception Cause)? DriverFailure(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (DependencyOf(e) is { } dependency)
            {
                return (dependency, e);
            }
        }

        return null;
    }

    /// <summary>Which store a driver exception comes from, by the driver's assembly; null for any other exception.</summary>
    private static string? DependencyOf(Exception exception) => exception.GetType().Assembly.GetName().Name switch
    {
        "StackExchange.Redis" => "redis",
        "MySqlConnector" => "mysql",
        { } name when name.StartsWith("NATS.", StringComparison.Ordinal) => "nats",
        _ => null,
    };

    [LoggerMessage(EventId = 6001, Level = LogLevel.Warning, Message = "Grain call {GrainId}.{Method} failed in {Dependency}; the caller gets DependencyUnavailableException")]
    private static partial void LogConverted(ILogger logger, Exception exception, string grainId, string method, string dependency);
}
