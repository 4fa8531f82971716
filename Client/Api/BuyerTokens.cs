using System.Security.Claims;
using System.Text;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace OrleansFlashSale.Client.Api;

/// <summary>
/// Mints buyer JWTs (HS256) with the gateway's own key: for the demo, the benchmarks, tests and
/// <c>./flashsale token</c>. A real deployment has its identity provider sign them with the same key.
/// </summary>
public static class BuyerTokens
{
    public static string Mint(string sub, string signingKey, TimeSpan lifetime, string issuer = "flashsale",
        string audience = "flashsale-buyers", DateTimeOffset? now = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(sub);
        if (Encoding.UTF8.GetByteCount(signingKey) < AuthOptions.MinKeyBytes)
        {
            throw new ArgumentException($"the signing key must have at least {AuthOptions.MinKeyBytes} bytes", nameof(signingKey));
        }

        var issuedAt = (now ?? DateTimeOffset.UtcNow).UtcDateTime;
        var descriptor = new SecurityTokenDescriptor
        {
            Subject = new ClaimsIdentity([new Claim(JwtRegisteredClaimNames.Sub, sub)]),
            Issuer = issuer,
            Audience = audience,
            IssuedAt = issuedAt,
            NotBefore = issuedAt,
            Expires = issuedAt + lifetime,
            SigningCredentials = new SigningCredentials(SigningKey(signingKey), SecurityAlgorithms.HmacSha256),
        };
        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(descriptor);
    }

    public static SymmetricSecurityKey SigningKey(string key) => new(Encoding.UTF8.GetBytes(key));
}
