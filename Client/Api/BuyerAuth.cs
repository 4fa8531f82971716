using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace OrleansFlashSale.Client.Api;

/// <summary>
/// Who the buyer is. Mode <c>none</c>: whoever the body names. Mode <c>jwt</c>: the <c>sub</c> of a valid bearer
/// token; a body <c>userId</c> may repeat it but never replace it.
/// </summary>
public sealed class BuyerAuth(IOptions<AuthOptions> options)
{
    public bool IsJwt => options.Value.IsJwt;

    /// <summary>The buyer's user id, or the problem to answer (401 for the token, 403 for a body naming someone else).</summary>
    public async Task<(string? UserId, ProblemHttpResult? Problem)> ResolveAsync(HttpContext context, string? bodyUserId)
    {
        if (!options.Value.IsJwt)
        {
            return (bodyUserId, null);
        }

        var (sub, problem) = await AuthenticateAsync(context);
        if (problem is not null)
        {
            return (null, problem);
        }

        if (bodyUserId is not null && !string.Equals(bodyUserId, sub, StringComparison.Ordinal))
        {
            return (null, SecurityProblems.Create(StatusCodes.Status403Forbidden, SecurityErrorCodes.UserMismatch,
                "userId in the body is not the user of the bearer token"));
        }

        return (sub, null);
    }

    /// <summary>The <c>sub</c> of the request's bearer token (jwt mode only).</summary>
    public async Task<(string? Sub, ProblemHttpResult? Problem)> AuthenticateAsync(HttpContext context)
    {
        // Explicit instead of [Authorize]: the framework's challenge is a bare 401, buyers get problem+json with a code.
        var result = await context.AuthenticateAsync(JwtBearerDefaults.AuthenticationScheme);
        if (result.None)
        {
            return (null, Unauthorized(context, SecurityErrorCodes.BuyerTokenMissing, null));
        }

        if (!result.Succeeded)
        {
            return result.Failure is SecurityTokenExpiredException
                ? (null, Unauthorized(context, SecurityErrorCodes.BuyerTokenExpired, "error=\"invalid_token\", error_description=\"The token expired\""))
                : (null, Unauthorized(context, SecurityErrorCodes.BuyerTokenInvalid, "error=\"invalid_token\""));
        }

        var sub = result.Principal.FindFirst(JwtRegisteredClaimNames.Sub)?.Value;
        if (SaleRules.ValidateId(sub, "sub") is { } error)
        {
            return (null, Unauthorized(context, SecurityErrorCodes.BuyerTokenInvalid, "error=\"invalid_token\"", $"the token's {error}"));
        }

        return (sub, null);
    }

    private static ProblemHttpResult Unauthorized(HttpContext context, string code, string? challenge, string? detail = null)
    {
        context.Response.Headers.WWWAuthenticate = challenge is null ? "Bearer" : $"Bearer {challenge}";
        return SecurityProblems.Create(StatusCodes.Status401Unauthorized, code, detail);
    }
}
