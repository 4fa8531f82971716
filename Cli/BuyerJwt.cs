using System.Security.Claims;
using System.Text;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace OrleansFlashSale.Cli;

/// <summary>
/// The gateway's buyer authentication (section <c>FlashSale:Auth</c>) as far as the tools need it to sign buyer JWTs.
/// A copy of the names and defaults of the gateway's AuthOptions, which this program does not reference: it ships no
/// gateway. A unit test holds the two to the same names and defaults.
/// </summary>
public sealed class BuyerAuthSettings
{
    public const string Section = "FlashSale:Auth";

    /// <summary>HS256 wants a key at least as long as its hash (256 bits); the gateway refuses shorter ones.</summary>
    public const int MinKeyBytes = 32;

    public string Mode { get; set; } = "none";

    public string SigningKey { get; set; } = "";

    public string Issuer { get; set; } = "flashsale";

    public string Audience { get; set; } = "flashsale-buyers";

    public bool IsJwt => string.Equals(Mode, "jwt", StringComparison.OrdinalIgnoreCase);
}

/// <summary>
/// Buyer JWTs (HS256) signed with the gateway's key, for the demo, the tests and <c>./flashsale token</c>, minted with
/// the token library the gateway's JwtBearer validates with: the claims the gateway checks (sub, iss, aud, iat, nbf,
/// exp) and nothing else. A real deployment has its identity provider sign them with the same key.
/// </summary>
public static class BuyerJwt
{
    public static string Mint(string sub, string signingKey, TimeSpan lifetime, string issuer = "flashsale",
        string audience = "flashsale-buyers", DateTimeOffset? now = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(sub);
        var key = Encoding.UTF8.GetBytes(signingKey);
        if (key.Length < BuyerAuthSettings.MinKeyBytes)
        {
            throw new ArgumentException($"the signing key must have at least {BuyerAuthSettings.MinKeyBytes} bytes", nameof(signingKey));
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
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(key), SecurityAlgorithms.HmacSha256),
        };
        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(descriptor);
    }
}
