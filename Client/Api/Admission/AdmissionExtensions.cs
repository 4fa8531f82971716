using Microsoft.Extensions.Options;

namespace OrleansFlashSale.Client.Api.Admission;

public static class AdmissionExtensions
{
    private static readonly PathString SalesPrefix = new("/api/sales");

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

        // Matched on the path, not the routed endpoint: this works wherever it sits relative to UseRouting and
        // authentication, which other middleware in the host may need to order for themselves.
        return app.Use((context, next) =>
            HttpMethods.IsPost(context.Request.Method) && PurchaseSku(context.Request.Path) is { } sku
                ? admission.RunAsync(context, sku, next)
                : next(context));
    }

    /// <summary>The SKU of <c>/api/sales/{sku}/purchases</c>, or null for any other path.</summary>
    internal static string? PurchaseSku(PathString path)
    {
        if (!path.StartsWithSegments(SalesPrefix, StringComparison.OrdinalIgnoreCase, out var rest) || rest.Value is not { Length: > 1 } tail)
        {
            return null;
        }

        var parts = tail[1..].TrimEnd('/').Split('/');
        return parts.Length == 2 && parts[0].Length > 0 && string.Equals(parts[1], "purchases", StringComparison.OrdinalIgnoreCase) ? parts[0] : null;
    }
}
