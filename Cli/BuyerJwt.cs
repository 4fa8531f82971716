using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

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
/// Buyer JWTs (HS256) signed with the gateway's key, for the demo and <c>./flashsale token</c>: the claims the gateway
/// validates (sub, iss, aud, iat, nbf, exp) and nothing else. A test buys with them on a gateway in jwt mode.
/// </summary>
public static class BuyerJwt
{
    private static readonly byte[] Header = JsonSerializer.SerializeToUtf8Bytes(new { alg = "HS256", typ = "JWT" });

    public static string Mint(string sub, string signingKey, TimeSpan lifetime, string issuer = "flashsale",
        string audience = "flashsale-buyers", DateTimeOffset? now = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(sub);
        var key = Encoding.UTF8.GetBytes(signingKey);
        if (key.Length < BuyerAuthSettings.MinKeyBytes)
        {
            throw new ArgumentException($"the signing key must have at least {BuyerAuthSettings.MinKeyBytes} bytes", nameof(signingKey));
        }

        var issuedAt = (now ?? DateTimeOffset.UtcNow).ToUnixTimeSeconds();
        var payload = JsonSerializer.SerializeToUtf8Bytes(new
        {
            sub,
            iss = issuer,
            aud = audience,
            iat = issuedAt,
            nbf = issuedAt,
            exp = issuedAt + (long)lifetime.TotalSeconds,
        });
        var signed = Base64Url.EncodeToString(Header) + "." + Base64Url.EncodeToString(payload);
        return signed + "." + Base64Url.EncodeToString(HMACSHA256.HashData(key, Encoding.ASCII.GetBytes(signed)));
    }
}
