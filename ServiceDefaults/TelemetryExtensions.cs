using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using StackExchange.Redis;

namespace OrleansFlashSale.ServiceDefaults;

public static class TelemetryExtensions
{
    /// <summary>Path of the Prometheus scrape endpoint on the gateway and on the silo.</summary>
    public const string MetricsPath = "/metrics";

    /// <summary>Orleans' own meter (membership, messaging, grain counts).</summary>
    public const string OrleansMeter = "Microsoft.Orleans";

    /// <summary>The runtime's own meter (GC, JIT, thread pool, exceptions): what a process spends besides the work.</summary>
    public const string RuntimeMeter = "System.Runtime";

    /// <summary>Orleans' activity sources: grain calls as seen by caller and callee (with AddActivityPropagation).</summary>
    public static readonly string[] OrleansSources = ["Microsoft.Orleans.Runtime", "Microsoft.Orleans.Application"];

    /// <summary>MySqlConnector's own activity source: one span per command.</summary>
    public const string MySqlSource = "MySqlConnector";

    /// <summary>
    /// Metrics (the project's meter, Orleans', ASP.NET Core's) on <c>/metrics</c> and traces (ASP.NET Core, Orleans
    /// grain calls, Redis, MySQL), both (and the logs) also sent by OTLP when <c>FlashSale:Telemetry:OtlpEndpoint</c> or
    /// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set. Traces are recorded only when exported (or <c>Traces</c> is <c>on</c>).
    /// The host must also call <c>AddActivityPropagation()</c> on its Orleans builder for a trace to follow grain calls.
    /// </summary>
    /// <param name="serviceName">The <c>service.name</c> resource: <c>flashsale-gateway</c> or <c>flashsale-silo</c>.</param>
    /// <param name="meters">The application's meters, besides Orleans' and ASP.NET Core's: the caller names them, so
    /// that these defaults reference no application project.</param>
    public static IHostApplicationBuilder AddFlashSaleTelemetry(this IHostApplicationBuilder builder, string serviceName, params string[] meters)
    {
        builder.Services.AddFlashSaleTelemetry(builder.Configuration, serviceName, meters);
        return builder;
    }

    /// <inheritdoc cref="AddFlashSaleTelemetry(IHostApplicationBuilder, string, string[])"/>
    public static IServiceCollection AddFlashSaleTelemetry(this IServiceCollection services, IConfiguration configuration, string serviceName, params string[] meters)
    {
        var section = configuration.GetSection(TelemetryOptions.Section);
        services.AddOptions<TelemetryOptions>().Bind(section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<TelemetryOptions>, TelemetryOptionsValidator>();
        // Read now because the exporters are chosen while the providers are built; a bad value is left out here and
        // stops the host through ValidateOnStart with a message naming it.
        var options = section.Get<TelemetryOptions>() ?? new TelemetryOptions();

        var telemetry = services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(serviceName, serviceInstanceId: Environment.MachineName))
            .WithMetrics(metrics =>
            {
                metrics.AddMeter([.. meters, OrleansMeter, RuntimeMeter])
                    .AddAspNetCoreInstrumentation();
                if (options.Prometheus)
                {
                    metrics.AddPrometheusExporter();
                }
            });

        var otlpEndpoint = options.TryGetOtlpEndpoint(out var endpoint) ? endpoint : null;
        var otlpFromEnvironment = otlpEndpoint is null && !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);
        if (options.TracesEnabled(exporterConfigured: otlpEndpoint is not null || otlpFromEnvironment))
        {
            telemetry.WithTracing(tracing => tracing
                .SetSampler(new ParentBasedSampler(new TraceIdRatioBasedSampler(options.TraceSampleRatio)))
                .AddAspNetCoreInstrumentation(o => o.Filter = context => !IsHousekeeping(context.Request.Path))
                .AddSource(OrleansSources)
                .AddSource(MySqlSource)
                // Flushed every second instead of every ten, so a Redis span reaches the exporter soon after its call.
                .AddRedisInstrumentation(o => o.FlushInterval = TimeSpan.FromSeconds(1))
                .ConfigureRedisInstrumentation((provider, redis) =>
                {
                    // The process's one multiplexer is made on first use; it is traced from the moment it exists.
                    // The gateway has none (its cluster client keeps its own membership connection).
                    if (provider.GetService<IRedisMultiplexerSource>() is { } connection)
                    {
                        _ = connection.GetMultiplexerAsync().ContinueWith(
                            task => redis.AddConnection(task.Result),
                            CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
                    }
                }));
        }

        if (otlpEndpoint is not null)
        {
            telemetry.UseOtlpExporter(options.OtlpProtocol == "grpc" ? OtlpExportProtocol.Grpc : OtlpExportProtocol.HttpProtobuf, otlpEndpoint);
        }
        else if (otlpFromEnvironment)
        {
            // The standard variables (endpoint, protocol, headers) are read by the exporter itself.
            telemetry.UseOtlpExporter();
        }

        if (options.Prometheus)
        {
            // A startup filter rather than a Map call: the scrape endpoint comes with this one registration, and the
            // hosts keep a single line each.
            services.AddTransient<IStartupFilter, MetricsEndpointStartupFilter>();
        }

        return services;
    }

    /// <summary>Scrapes and probes are not traced: they would drown the buyers' requests.</summary>
    private static bool IsHousekeeping(PathString path) =>
        path.StartsWithSegments(MetricsPath) || path.StartsWithSegments("/health");

    private sealed class MetricsEndpointStartupFilter : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.UseOpenTelemetryPrometheusScrapingEndpoint(MetricsPath);
            next(app);
        };
    }
}
