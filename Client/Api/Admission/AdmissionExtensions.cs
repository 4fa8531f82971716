using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace OrleansFlashSale.Client.Api.Admission;

public static class AdmissionExtensions
{
    /// <summary>The route of the one endpoint admission control guards: purchases are what can overload the cluster.</summary>
    public const string PurchaseRoute = "/api/sales/{sku}/purchases";

    /// <summary>Admission control and rate limits for purchases, from <c>FlashSale:Gateway:Admission</c> and <c>FlashSale:Gateway:RateLimits</c>.</summary>
    public static IServiceCollection AddFlashSaleAdmission(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<AdmissionOptions>().Bind(configuration.GetSection(AdmissionOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<AdmissionOptions>, AdmissionOptionsValidator>();
        services.AddOptions<RateLimitOptions>().Bind(configuration.GetSection(RateLimitOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<RateLimitOptions>, RateLimitOptionsValidator>();
        services.AddSingleton<AdmissionControl>();
        return services;
    }

    /// <summary>
    /// Puts admission control in front of the purchase endpoint. Call it after authentication (so the buyer's subject
    /// is known) and before the endpoints are mapped.
    /// </summary>
    public static IApplicationBuilder UseFlashSaleAdmission(this IApplicationBuilder app)
    {
        var admission = app.ApplicationServices.GetRequiredService<AdmissionControl>();
        if (!admission.Enabled)
        {
            return app;
        }

        // Matching on the routed endpoint rather than on the path: the route decides what a purchase is, once.
        app.UseRouting();
        return app.Use((context, next) =>
            HttpMethods.IsPost(context.Request.Method) && context.GetEndpoint() is RouteEndpoint { RoutePattern.RawText: PurchaseRoute }
                ? admission.RunAsync(context, next)
                : next(context));
    }
}
