using System.Text;
using Microsoft.IdentityModel.Tokens;

namespace OrleansFlashSale.Client.Api;

/// <summary>
/// The key buyer JWTs are validated with. The gateway only validates: the command-line tools mint tokens for the demo
/// and <c>./flashsale token</c>, a real deployment has its identity provider sign them with the same key.
/// </summary>
public static class BuyerTokens
{
    public static SymmetricSecurityKey SigningKey(string key) => new(Encoding.UTF8.GetBytes(key));
}
