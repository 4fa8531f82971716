using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Orleans.Dashboard;

namespace OrleansFlashSale.Client.Api.Dashboard;

/// <summary>
/// The live dashboard: a page at <c>/dashboard</c> (HTML, JS and CSS embedded in this assembly, nothing fetched from
/// elsewhere) polling <c>GET /api/admin/dashboard</c>; and the Orleans dashboard at <c>/orleans-dashboard</c>.
/// </summary>
public static class DashboardExtensions
{
    public const string PagePath = "/dashboard";
    public const string OrleansDashboardPath = "/orleans-dashboard";

    private const string PurchaseRoute = "/api/sales/{sku}/purchases";

    private static readonly Dictionary<string, string> ContentTypes = new(StringComparer.Ordinal)
    {
        ["index.html"] = "text/html; charset=utf-8",
        ["dashboard.js"] = "text/javascript; charset=utf-8",
        ["dashboard.css"] = "text/css; charset=utf-8",
    };

    /// <summary>Services of the dashboard: the purchase counters and the snapshot builder.</summary>
    public static IServiceCollection AddFlashSaleDashboard(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<PurchaseRates>();
        services.AddSingleton<DashboardService>();
        // Problem answers carry their code in the body only; note it for the purchase counter on the way out.
        services.AddOptions<ProblemDetailsOptions>().PostConfigure(o =>
        {
            var previous = o.CustomizeProblemDetails;
            o.CustomizeProblemDetails = context =>
            {
                previous?.Invoke(context);
                if (context.HttpContext.Features.Get<IProblemCodeFeature>() is { } feature
                    && context.ProblemDetails.Extensions.TryGetValue("code", out var code) && code is string text)
                {
                    feature.Code = text;
                }
            };
        });
        return services;
    }

    /// <summary>The silos' half of the Orleans dashboard is registered by the silo; this is the client's half.</summary>
    public static IClientBuilder AddFlashSaleOrleansDashboard(this IClientBuilder client) => client.AddDashboard();

    /// <summary>
    /// Maps the page, its data endpoint and the purchase counter; <paramref name="orleansDashboard"/> also mounts the
    /// Orleans dashboard (needs <see cref="AddFlashSaleOrleansDashboard"/> and silos with the dashboard).
    /// </summary>
    public static WebApplication MapFlashSaleDashboard(this WebApplication app, bool orleansDashboard)
    {
        var rates = app.Services.GetRequiredService<PurchaseRates>();
        app.Use(async (context, next) =>
        {
            if (!HttpMethods.IsPost(context.Request.Method)
                || context.GetEndpoint() is not RouteEndpoint { RoutePattern.RawText: PurchaseRoute })
            {
                await next(context);
                return;
            }

            var feature = new PurchaseOutcomeFeature();
            context.Features.Set<IProblemCodeFeature>(feature);
            await next(context);
            // Unknown or malformed SKUs are not sales: counting them would let anyone fill the table.
            if (context.Request.RouteValues["sku"] is string sku && SaleRules.IsValidSku(sku) && feature.Code != ErrorCodes.UnknownSale)
            {
                rates.Record(sku, context.Response.StatusCode switch
                {
                    StatusCodes.Status201Created => "created",
                    StatusCodes.Status200OK => "replayed",
                    _ => feature.Code ?? "other",
                });
            }
        });

        app.MapGet(PagePath, (HttpContext context) => ServeAsset(context, "index.html"));
        app.MapGet(PagePath + "/{file}", (string file, HttpContext context) => ServeAsset(context, file));
        app.MapGet("/api/admin/dashboard", GetDashboardAsync);
        if (orleansDashboard)
        {
            // Its pages show grain state and logs; its scripts send no token, so the browser's own Basic
            // login carries it (any user name, the admin token as password) on every request under the prefix.
            var options = app.Services.GetRequiredService<IOptions<GatewayOptions>>();
            app.Use(async (context, next) =>
            {
                if (context.Request.Path.StartsWithSegments(OrleansDashboardPath) && !IsAdmin(context.Request, options.Value.AdminToken))
                {
                    context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                    context.Response.Headers.WWWAuthenticate = "Basic realm=\"orleans-dashboard\", charset=\"UTF-8\"";
                    return;
                }

                await next(context);
            });
            app.MapOrleansDashboard(routePrefix: OrleansDashboardPath);
        }
        else
        {
            // Said plainly rather than left to the fallback 404, which would not tell an operator why.
            app.Map(OrleansDashboardPath + "/{**rest}", () => Problems.Create(StatusCodes.Status404NotFound, ErrorCodes.OrleansDashboardOff,
                "Set FlashSale:Gateway:OrleansDashboard on this gateway and FlashSale:Silo:OrleansDashboard on every silo to true " +
                "to serve it (./flashsale up does so with FLASHSALE_ORLEANS_DASHBOARD=1). It is off by default: its call profiler " +
                "and once-a-second metric collection cost CPU the purchase path needs."))
                .ExcludeFromDescription();
        }

        return app;
    }

    internal static async Task<IResult> GetDashboardAsync(HttpRequest request, AdminAuth auth, DashboardService dashboard, ILoggerFactory logs)
    {
        if (auth.Check(request) is { } denied)
        {
            return denied;
        }

        var sku = request.Query["sku"].ToString();
        if (sku.Length > 0 && !SaleRules.IsValidSku(sku))
        {
            return Problems.Invalid("sku must be 1-64 characters of A-Z a-z 0-9 . _ -");
        }

        return await SaleEndpoints.GuardAsync(logs, async () =>
            await dashboard.BuildAsync(sku.Length > 0 ? sku : null) is { } view
                ? TypedResults.Ok(view)
                : Problems.Create(StatusCodes.Status404NotFound, ErrorCodes.UnknownSale));
    }

    /// <summary>Bearer token, or Basic with the token as password; compared in constant time.</summary>
    private static bool IsAdmin(HttpRequest request, string adminToken)
    {
        var header = request.Headers.Authorization.ToString();
        string? given = null;
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            given = header["Bearer ".Length..].Trim();
        }
        else if (header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
        {
            try
            {
                var pair = Encoding.UTF8.GetString(Convert.FromBase64String(header["Basic ".Length..].Trim()));
                given = pair[(pair.IndexOf(':', StringComparison.Ordinal) + 1)..];
            }
            catch (FormatException)
            {
                return false;
            }
        }

        return given is not null && CryptographicOperations.FixedTimeEquals(
            SHA256.HashData(Encoding.UTF8.GetBytes(given)), SHA256.HashData(Encoding.UTF8.GetBytes(adminToken)));
    }

    private static IResult ServeAsset(HttpContext context, string file)
    {
        if (!ContentTypes.TryGetValue(file, out var contentType)
            || Assembly.GetExecutingAssembly().GetManifestResourceStream("dashboard/" + file) is not { } stream)
        {
            return Problems.Create(StatusCodes.Status404NotFound, "not_found", $"no dashboard file {file}");
        }

        // The page may only talk to this gateway: no script, style or image from anywhere else.
        context.Response.Headers.ContentSecurityPolicy = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'";
        context.Response.Headers.CacheControl = "no-cache";
        context.Response.Headers.XContentTypeOptions = "nosniff";
        return TypedResults.Stream(stream, contentType);
    }

    /// <summary>Set by the purchase counter, filled when the answer is a problem.</summary>
    private sealed class PurchaseOutcomeFeature : IProblemCodeFeature
    {
        public string? Code { get; set; }
    }
}
