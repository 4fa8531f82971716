using System.Text;
using Microsoft.Extensions.Options;

namespace OrleansFlashSale.Client.Api;

/// <summary>Buyer authentication and purchase tokens (section <c>FlashSale:Auth</c>).</summary>
public sealed class AuthOptions
{
    public const string Section = "FlashSale:Auth";

    public const string ModeNone = "none";

    public const string ModeJwt = "jwt";

    /// <summary>HS256 wants a key at least as long as its hash (256 bits); shorter keys are refused by IdentityModel too.</summary>
    public const int MinKeyBytes = 32;

    /// <summary><c>none</c>: the body names the buyer. <c>jwt</c>: the bearer token's <c>sub</c> does.</summary>
    public string Mode { get; set; } = ModeNone;

    /// <summary>
    /// Lets a gateway in the Production environment run with <see cref="ModeNone"/>, where the request body names the
    /// buyer and anyone may buy as anyone. Set it only behind a front end that has authenticated the buyer already.
    /// </summary>
    public bool AllowNoneInProduction { get; set; }

    /// <summary>HS256 key of buyer JWTs (jwt mode). Never logged.</summary>
    public string SigningKey { get; set; } = "";

    public string Issuer { get; set; } = "flashsale";

    public string Audience { get; set; } = "flashsale-buyers";

    /// <summary>Tolerated difference between the token issuer's clock and ours.</summary>
    public int ClockSkewSeconds { get; set; } = 30;

    /// <summary>HMAC-SHA256 key of purchase tokens. Empty: sales that require a purchase token cannot be bought here. Never logged.</summary>
    public string PurchaseTokenKey { get; set; } = "";

    public int PurchaseTokenLifetimeSeconds { get; set; } = 30;

    public bool IsJwt => string.Equals(Mode, ModeJwt, StringComparison.OrdinalIgnoreCase);

    public bool PurchaseTokensEnabled => PurchaseTokenKey.Length > 0;

    public override string ToString() =>
        $"Auth mode {Mode}{(AllowNoneInProduction ? " (allowed in Production)" : "")}, issuer {Issuer}, audience {Audience}, signing key {(SigningKey.Length > 0 ? "set" : "missing")}, " +
        $"purchase token key {(PurchaseTokenKey.Length > 0 ? "set" : "missing")}, purchase token lifetime {PurchaseTokenLifetimeSeconds} s";
}

/// <param name="environment">The host's environment; without one (no host) the Production guard does not apply.</param>
public sealed class AuthOptionsValidator(IHostEnvironment? environment = null) : IValidateOptions<AuthOptions>
{
    public ValidateOptionsResult Validate(string? name, AuthOptions options)
    {
        var errors = new List<string>();
        var isNone = string.Equals(options.Mode, AuthOptions.ModeNone, StringComparison.OrdinalIgnoreCase);
        if (!isNone && !options.IsJwt)
        {
            // The value itself is not a secret, but it is not echoed either: a key pasted into the wrong setting would be.
            errors.Add($"{AuthOptions.Section}:Mode must be '{AuthOptions.ModeNone}' or '{AuthOptions.ModeJwt}'.");
        }

        if (isNone && environment?.IsProduction() == true && !options.AllowNoneInProduction)
        {
            errors.Add($"{AuthOptions.Section}:Mode is '{AuthOptions.ModeNone}' in the Production environment: the request body names the " +
                       $"buyer, so anyone may buy as anyone. Set {AuthOptions.Section}:Mode={AuthOptions.ModeJwt} (with " +
                       $"{AuthOptions.Section}:SigningKey), or {AuthOptions.Section}:AllowNoneInProduction=true when a front end " +
                       "authenticates buyers before this gateway.");
        }

        if (options.IsJwt)
        {
            if (Encoding.UTF8.GetByteCount(options.SigningKey) < AuthOptions.MinKeyBytes)
            {
                errors.Add($"{AuthOptions.Section}:SigningKey must be a secret of at least {AuthOptions.MinKeyBytes} bytes when Mode is jwt.");
            }

            if (string.IsNullOrWhiteSpace(options.Issuer) || string.IsNullOrWhiteSpace(options.Audience))
            {
                errors.Add($"{AuthOptions.Section}:Issuer and Audience are required when Mode is jwt.");
            }
        }

        if (options.ClockSkewSeconds is < 0 or > 600)
        {
            errors.Add($"{AuthOptions.Section}:ClockSkewSeconds must be between 0 and 600.");
        }

        if (options.PurchaseTokenKey.Length > 0 && Encoding.UTF8.GetByteCount(options.PurchaseTokenKey) < AuthOptions.MinKeyBytes)
        {
            errors.Add($"{AuthOptions.Section}:PurchaseTokenKey must be empty (purchase tokens off) or a secret of at least {AuthOptions.MinKeyBytes} bytes.");
        }

        if (options.PurchaseTokenLifetimeSeconds is < 1 or > 3600)
        {
            errors.Add($"{AuthOptions.Section}:PurchaseTokenLifetimeSeconds must be between 1 and 3600.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
