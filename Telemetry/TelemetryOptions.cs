using Microsoft.Extensions.Options;

namespace OrleansFlashSale.Telemetry;

/// <summary>Where metrics and traces go besides <c>/metrics</c> (section <c>FlashSale:Telemetry</c>).</summary>
public sealed class TelemetryOptions
{
    public const string Section = "FlashSale:Telemetry";

    /// <summary>
    /// OTLP collector, e.g. <c>http://otel-collector:4317</c>. Empty: OTLP only if the standard
    /// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set.
    /// </summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary><c>grpc</c> (port 4317 by convention) or <c>http/protobuf</c> (4318).</summary>
    public string OtlpProtocol { get; set; } = "grpc";

    /// <summary>Serve Prometheus text on <c>/metrics</c> of this host's HTTP endpoint.</summary>
    public bool Prometheus { get; set; } = true;

    internal bool TryGetOtlpEndpoint(out Uri endpoint)
    {
        endpoint = null!;
        return !string.IsNullOrWhiteSpace(OtlpEndpoint)
            && Uri.TryCreate(OtlpEndpoint, UriKind.Absolute, out endpoint!)
            && endpoint.Scheme is "http" or "https";
    }
}

public sealed class TelemetryOptionsValidator : IValidateOptions<TelemetryOptions>
{
    public ValidateOptionsResult Validate(string? name, TelemetryOptions options)
    {
        var errors = new List<string>();
        if (!string.IsNullOrWhiteSpace(options.OtlpEndpoint) && !options.TryGetOtlpEndpoint(out _))
        {
            errors.Add($"{TelemetryOptions.Section}:OtlpEndpoint must be an absolute http or https URL (e.g. http://otel-collector:4317).");
        }

        if (options.OtlpProtocol is not ("grpc" or "http/protobuf"))
        {
            errors.Add($"{TelemetryOptions.Section}:OtlpProtocol must be grpc or http/protobuf.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
