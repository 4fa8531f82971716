using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Dashboard;
using OrleansFlashSale.Silo;
using OrleansFlashSale.Telemetry;

// Content root is the program's folder, so appsettings.json is found whatever the working directory.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.Services.AddOptions<FlashSaleSiloOptions>().Bind(builder.Configuration.GetSection(FlashSaleSiloOptions.Section)).ValidateOnStart();
builder.Services.AddSingleton<IValidateOptions<FlashSaleSiloOptions>, FlashSaleSiloOptionsValidator>();

// Endpoints and cluster identity come from configuration; read once here because Orleans needs them at build time.
var siloOptions = builder.Configuration.GetSection(FlashSaleSiloOptions.Section).Get<FlashSaleSiloOptions>() ?? new FlashSaleSiloOptions();
var siloErrors = new FlashSaleSiloOptionsValidator().Validate(null, siloOptions);
if (siloErrors.Failed)
{
    await Console.Error.WriteLineAsync($"Configuration error: {siloErrors.FailureMessage}");
    return 2;
}

builder.UseOrleans(silo =>
{
    silo.Configure<ClusterOptions>(o =>
    {
        o.ClusterId = siloOptions.ClusterId;
        o.ServiceId = siloOptions.ServiceId;
    });
    silo.ConfigureEndpoints(System.Net.IPAddress.Parse(siloOptions.AdvertisedAddress), siloOptions.SiloPort, siloOptions.GatewayPort, listenOnAnyHostAddress: false);
    silo.UseFlashSaleRedisClustering(builder.Configuration);
    silo.AddFlashSale(builder.Configuration);
    silo.AddActivityPropagation();
    // The gateway hosts the Orleans dashboard's pages; its grains and the call profiler run here.
    if (siloOptions.OrleansDashboard)
    {
        silo.AddDashboard();
    }
});
builder.AddFlashSaleTelemetry("flashsale-silo");

builder.Services.AddHealthChecks()
    .AddCheck<RedisHealthCheck>("redis", tags: ["ready"])
    .AddCheck<MySqlHealthCheck>("mysql", tags: ["ready"]);

var app = builder.Build();
// The silo is a hosted service started before Kestrel listens: once this answers, the silo has joined.
app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false });
app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains("ready") });

try
{
    await app.RunAsync();
    return 0;
}
catch (OptionsValidationException ex)
{
    await Console.Error.WriteLineAsync($"Configuration error: {string.Join(" ", ex.Failures)}");
    return 2;
}
