using System.Collections.Concurrent;
using System.Text.Json;

namespace OrleansFlashSale.Cli;

/// <summary>
/// What a demo buyer sends besides the body: a JWT of their own when the gateway runs FlashSale:Auth:Mode jwt, and
/// a fresh purchase token when the sale requires one (one extra request per purchase, as a real buyer makes).
/// </summary>
public sealed class DemoBuyers(GatewayClient client, BuyerAuthSettings auth, string sku, bool purchaseTokens)
{
    /// <summary>The header the gateway reads a purchase token from (its SecurityEndpoints.PurchaseTokenHeader).</summary>
    public const string PurchaseTokenHeader = "X-Purchase-Token";

    private readonly ConcurrentDictionary<string, string> _jwts = new(StringComparer.Ordinal);

    public string Describe() =>
        $"buyers {(auth.IsJwt ? "sign in with JWTs" : "name themselves (auth mode none)")}" +
        (purchaseTokens ? ", purchase tokens required" : "");

    /// <summary>The headers of one purchase, or the gateway's refusal of the purchase token request.</summary>
    public async Task<(IReadOnlyDictionary<string, string> Headers, (int Status, JsonElement Body)? Refused)> HeadersAsync(string user)
    {
        var headers = new Dictionary<string, string>(StringComparer.Ordinal);
        if (auth.IsJwt)
        {
            // Minted once per user and kept: signing is cheap but not free, and the demo measures the gateway.
            headers["Authorization"] = "Bearer " + _jwts.GetOrAdd(user, u => BuyerJwt.Mint(u, auth.SigningKey, TimeSpan.FromHours(1), auth.Issuer, auth.Audience));
        }

        if (purchaseTokens)
        {
            var answer = await client.SendAsync(HttpMethod.Post, $"/api/sales/{sku}/purchase-tokens", new { userId = user }, headers: headers);
            if (answer.Status != 200)
            {
                return (headers, answer);
            }

            headers[PurchaseTokenHeader] = answer.Body.GetProperty("token").GetString()!;
        }

        return (headers, null);
    }
}
