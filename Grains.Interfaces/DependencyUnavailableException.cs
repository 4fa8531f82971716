namespace OrleansFlashSale;

/// <summary>
/// A store the cluster depends on (Redis, MySQL or NATS) failed inside a grain call. The silo logged the original
/// exception with the grain's key; this one carries its type and message to the caller, because the drivers' own
/// exception types cannot be serialised across a grain call (the caller would get a codec error instead). Being an
/// <see cref="OrleansException"/>, the gateway answers it as any other cluster failure: 503 with a code.
/// </summary>
[GenerateSerializer, Alias("flashsale.DependencyUnavailableException")]
public sealed class DependencyUnavailableException : OrleansException
{
    public DependencyUnavailableException()
    {
    }

    public DependencyUnavailableException(string dependency, string originalType, string message)
        : base($"{dependency} failed ({originalType}): {message}")
    {
        Dependency = dependency;
        OriginalType = originalType;
    }

    /// <summary><c>redis</c>, <c>mysql</c> or <c>nats</c>.</summary>
    [Id(0)]
    public string Dependency { get; private set; } = "";

    /// <summary>The driver's exception type, e.g. <c>StackExchange.Redis.RedisServerException</c>.</summary>
    [Id(1)]
    public string OriginalType { get; private set; } = "";
}
