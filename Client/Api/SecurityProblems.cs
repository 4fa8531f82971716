using Microsoft.AspNetCore.Http.HttpResults;

namespace OrleansFlashSale.Client.Api;

/// <summary>Codes of the buyer authentication and purchase token refusals (problem+json <c>code</c>).</summary>
public static class SecurityErrorCodes
{
    public const string BuyerTokenMissing = "buyer_token_missing";
    public const string BuyerTokenInvalid = "buyer_token_invalid";
    public const string BuyerTokenExpired = "buyer_token_expired";
    public const string UserMismatch = "user_mismatch";
    public const string PurchaseTokenMissing = "purchase_token_missing";
    public const string PurchaseTokenInvalid = "purchase_token_invalid";
    public const string PurchaseTokenExpired = "purchase_token_expired";
    public const string PurchaseTokenWrongUser = "purchase_token_wrong_user";
    public const string PurchaseTokenWrongSale = "purchase_token_wrong_sale";
    public const string PurchaseTokensNotConfigured = "purchase_tokens_not_configured";
}

/// <summary>Kept apart from <see cref="Problems"/> so the security codes and their titles live in one place.</summary>
public static class SecurityProblems
{
    private static readonly Dictionary<string, string> Titles = new()
    {
        [SecurityErrorCodes.BuyerTokenMissing] = "A buyer bearer token is required.",
        [SecurityErrorCodes.BuyerTokenInvalid] = "The buyer bearer token is not valid.",
        [SecurityErrorCodes.BuyerTokenExpired] = "The buyer bearer token expired.",
        [SecurityErrorCodes.UserMismatch] = "The body names another user than the bearer token.",
        [SecurityErrorCodes.PurchaseTokenMissing] = "This sale needs a purchase token (X-Purchase-Token).",
        [SecurityErrorCodes.PurchaseTokenInvalid] = "The purchase token is malformed or its signature is wrong.",
        [SecurityErrorCodes.PurchaseTokenExpired] = "The purchase token expired; get a new one and retry with the same requestId.",
        [SecurityErrorCodes.PurchaseTokenWrongUser] = "The purchase token was issued to another user.",
        [SecurityErrorCodes.PurchaseTokenWrongSale] = "The purchase token was issued for another sale.",
        [SecurityErrorCodes.PurchaseTokensNotConfigured] = "This gateway has no purchase token key (FlashSale:Auth:PurchaseTokenKey).",
    };

    public static ProblemHttpResult Create(int status, string code, string? detail = null)
    {
        var problem = Problems.Create(status, code, detail);
        problem.ProblemDetails.Title = Titles.GetValueOrDefault(code, code);
        return problem;
    }
}
