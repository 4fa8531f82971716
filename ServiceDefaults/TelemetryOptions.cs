using Microsoft.Extensions.Options;

namespace OrleansFlashSale.ServiceDefaults;

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

    /// <summary>
    /// <c>auto</c>: traces are recorded only when there is somewhere to send them (an OTLP endpoint). <c>on</c>:
    /// always (for an exporter added in code). <c>off</c>: never. Recording a trace nobody reads costs a span per
    /// request, per grain call and a profiling session per Redis command; a trace of the gateway under the
    /// http-soldout bench showed that work.
    /// </summary>
    public string Traces { get; set; } = "auto";

    /// <summary>Share of new traces recorded (0..1); a trace started upstream keeps its parent's decision.</summary>
    public double TraceSampleRatio { get; set; } = 1.0;

    internal bool TracesEnabled(bool exporterConfigured) => Traces switch
    {
        "on" => true,
        "off" => false,
        _ => exporterConfigured,
    };

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

        if (options.Traces is not ("auto" or "on" or "off"))
        {
            errors.Add($"{TelemetryOptions.Section}:Traces must be auto, on or off.");
        }

        if (!(options.TraceSampleRatio is >= 0 and <= 1))
        {
            errors.Add($"{TelemetryOptions.Section}:TraceSampleRatio must be between 0 and 1.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
