using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Dashboard;
using OrleansFlashSale.Silo;
using OrleansFlashSale;
using OrleansFlashSale.ServiceDefaults;

// Content root is the program's folder, so appsettings.json is found whatever the working directory.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.Services.AddOptions<FlashSaleSiloOptions>().Bind(builder.Configuration.GetSection(FlashSaleSiloOptions.Section)).ValidateOnStart();
builder.Services.AddSingleton<IValidateOptions<FlashSaleSiloOptions>, FlashSaleSiloOptionsValidator>();

// Endpoints and cluster identity come from configuration; read once here because Orleans needs them at build time.
var siloOptions = builder.Configuration.GetSection(FlashSaleSiloOptions.Section).Get<FlashSaleSiloOptions>() ?? new FlashSaleSiloOptions();
var siloErrors = new FlashSaleSiloOptionsValidator().Validate(null, siloOptions);
if (siloErrors.Failed)
{
    return await FlashSaleHost.ConfigurationErrorAsync(siloErrors.FailureMessage);
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
builder.AddFlashSaleTelemetry("flashsale-silo", FlashSaleMeter.Name);

builder.Services.AddHealthChecks()
    .AddCheck<RedisHealthCheck>("redis", tags: ["ready"])
    .AddCheck<MySqlHealthCheck>("mysql", tags: ["ready"]);

var app = builder.Build();
// The silo is a hosted service started before Kestrel listens: once this answers, the silo has joined.
app.MapFlashSaleHealth();
return await app.RunFlashSaleAsync();
