using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace OrleansFlashSale.Client.Api;

/// <summary>The admin bearer token check: 401 without a token, 403 with a wrong one, compared in constant time.</summary>
public sealed class AdminAuth(IOptions<GatewayOptions> options)
{
    public ProblemHttpResult? Check(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        const string Scheme = "Bearer ";
        if (!header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase) || header.Length == Scheme.Length)
        {
            request.HttpContext.Response.Headers.WWWAuthenticate = "Bearer";
            return Problems.Create(StatusCodes.Status401Unauthorized, ErrorCodes.Unauthorized);
        }

        var given = SHA256.HashData(Encoding.UTF8.GetBytes(header[Scheme.Length..].Trim()));
        var expected = SHA256.HashData(Encoding.UTF8.GetBytes(options.Value.AdminToken));
        return CryptographicOperations.FixedTimeEquals(given, expected)
            ? null
            : Problems.Create(StatusCodes.Status403Forbidden, ErrorCodes.Forbidden);
    }
}
