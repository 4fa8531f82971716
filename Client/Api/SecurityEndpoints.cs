using OrleansFlashSale.ClientLibrary;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;

namespace OrleansFlashSale.Client.Api;

/// <summary>Body of <c>POST /api/sales/{sku}/purchase-tokens</c>; in jwt mode it may be left out.</summary>
public sealed record PurchaseTokenBody(string? UserId);

public sealed record PurchaseTokenView(string Token, string Sku, string UserId, DateTimeOffset ExpiresAt);

public static class SecurityEndpoints
{
    public const string PurchaseTokenHeader = "X-Purchase-Token";

    /// <summary>Buyer authentication (FlashSale:Auth) and purchase tokens.</summary>
    public static IServiceCollection AddFlashSaleSecurity(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<AuthOptions>().Bind(configuration.GetSection(AuthOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<AuthOptions>, AuthOptionsValidator>();
        services.AddSingleton<BuyerAuth>();
        // A test registers its own (fake) clock first; everything else runs on real time.
        services.TryAddSingleton(new PurchaseTokenClock(TimeProvider.System));
        services.AddSingleton<PurchaseTokens>();

        // Only in jwt mode: a registered scheme makes the host run the authentication middleware on every request.
        // Only Mode is read here; binding the whole section now would throw on a bad number before validation names it.
        if (new AuthOptions { Mode = configuration[$"{AuthOptions.Section}:Mode"] ?? AuthOptions.ModeNone }.IsJwt)
        {
            services.AddAuthentication().AddJwtBearer();
            services.AddOptions<JwtBearerOptions>(JwtBearerDefaults.AuthenticationScheme)
                .Configure<IOptions<AuthOptions>>((jwt, options) => Configure(jwt, options.Value));
        }

        return services;
    }

    public static IEndpointRouteBuilder MapFlashSaleSecurity(this IEndpointRouteBuilder app)
    {
        app.MapPost("/api/sales/{sku}/purchase-tokens", IssueAsync);
        return app;
    }

    private static void Configure(JwtBearerOptions jwt, AuthOptions auth)
    {
        // Keep "sub" as "sub" instead of the long SOAP claim type names.
        jwt.MapInboundClaims = false;
        jwt.TokenValidationParameters = new TokenValidationParameters
        {
            ValidIssuer = auth.Issuer,
            ValidAudience = auth.Audience,
            IssuerSigningKey = BuyerTokens.SigningKey(auth.SigningKey),
            ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
            ValidateIssuer = true,
            ValidateAudience = true,
            ValidateLifetime = true,
            ValidateIssuerSigningKey = true,
            RequireExpirationTime = true,
            RequireSignedTokens = true,
            ClockSkew = TimeSpan.FromSeconds(auth.ClockSkewSeconds),
            NameClaimType = "sub",
        };
    }

    internal static async Task<IResult> IssueAsync(string sku, HttpRequest request, BuyerAuth buyers, PurchaseTokens tokens,
        JsonBody json, PurchaseClient sales, ILoggerFactory logs)
    {
        if (!SaleRules.IsValidSku(sku))
        {
            return Problems.Invalid("sku must be 1-64 characters of A-Z a-z 0-9 . _ -");
        }

        string? bodyUserId = null;
        // jwt mode needs no body (the token names the buyer); a body, when sent, is read as strictly as any other.
        if (!buyers.IsJwt || request.ContentLength > 0 || request.Headers.ContentType.Count > 0)
        {
            var (body, problem) = await json.ReadAsync<PurchaseTokenBody>(request);
            if (problem is not null)
            {
                return problem;
            }

            bodyUserId = body!.UserId;
        }

        var (userId, denied) = await buyers.ResolveAsync(request.HttpContext, bodyUserId);
        if (denied is not null)
        {
            return denied;
        }

        if (SaleRules.ValidateId(userId, "userId") is { } idError)
        {
            return Problems.Invalid(idError);
        }

        if (!tokens.Enabled)
        {
            return SecurityProblems.Create(StatusCodes.Status503ServiceUnavailable, SecurityErrorCodes.PurchaseTokensNotConfigured);
        }

        return await SaleEndpoints.GuardAsync(logs, async () =>
        {
            var sale = await sales.GetSaleAsync(sku);
            if (sale is null)
            {
                return Problems.Create(StatusCodes.Status404NotFound, ErrorCodes.UnknownSale);
            }

            // The purchase itself is checked again by the silos' sale clock; here the point is not to hand out
            // tokens that bots could stockpile before the start.
            var now = tokens.UtcNow;
            if (sale.StartsAt is { } start && now < start)
            {
                return Problems.Create(StatusCodes.Status409Conflict, ErrorCodes.NotStarted, $"the sale starts at {start:O}");
            }

            if (sale.EndsAt is { } end && now >= end)
            {
                return Problems.Create(StatusCodes.Status409Conflict, ErrorCodes.Ended, $"the sale ended at {end:O}");
            }

            var (token, expiresAt) = tokens.Issue(sku, userId!);
            return TypedResults.Ok(new PurchaseTokenView(token, sku, userId!, expiresAt));
        });
    }

    /// <summary>
    /// Null when the purchase may go on: the sale needs no token, or the request carries a valid one for this user
    /// and this sale (header <c>X-Purchase-Token</c>, else the body's <c>purchaseToken</c>).
    /// </summary>
    public static ProblemHttpResult? CheckPurchaseToken(HttpRequest request, PurchaseTokens tokens, SaleDefinition sale, string userId, string? bodyToken)
    {
        if (!sale.RequirePurchaseToken)
        {
            return null;
        }

        if (!tokens.Enabled)
        {
            return SecurityProblems.Create(StatusCodes.Status503ServiceUnavailable, SecurityErrorCodes.PurchaseTokensNotConfigured);
        }

        var header = request.Headers[PurchaseTokenHeader].ToString();
        var token = header.Length > 0 ? header : bodyToken;
        return tokens.Verify(token, sale.Sku, userId) switch
        {
            PurchaseTokenCheck.Valid => null,
            PurchaseTokenCheck.Missing => SecurityProblems.Create(StatusCodes.Status403Forbidden, SecurityErrorCodes.PurchaseTokenMissing,
                $"get one with POST /api/sales/{sale.Sku}/purchase-tokens and send it as {PurchaseTokenHeader}"),
            PurchaseTokenCheck.Expired => SecurityProblems.Create(StatusCodes.Status403Forbidden, SecurityErrorCodes.PurchaseTokenExpired),
            PurchaseTokenCheck.WrongUser => SecurityProblems.Create(StatusCodes.Status403Forbidden, SecurityErrorCodes.PurchaseTokenWrongUser),
            PurchaseTokenCheck.WrongSale => SecurityProblems.Create(StatusCodes.Status403Forbidden, SecurityErrorCodes.PurchaseTokenWrongSale),
            _ => SecurityProblems.Create(StatusCodes.Status403Forbidden, SecurityErrorCodes.PurchaseTokenInvalid),
        };
    }
}
