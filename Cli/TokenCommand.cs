using Microsoft.Extensions.Configuration;

namespace OrleansFlashSale.Cli;

/// <summary>
/// <c>./flashsale token USER [--lifetime SECONDS]</c>: prints a buyer JWT signed with the gateway's configured key
/// (FlashSale:Auth:SigningKey, Issuer, Audience from the environment), for curl and load tools.
/// </summary>
public static class TokenCommand
{
    public static int Run(string[] args)
    {
        if (args.Length == 0 || args[0].StartsWith("--", StringComparison.Ordinal))
        {
            throw new UsageException("token needs a user id first");
        }

        if (SaleRules.ValidateId(args[0], "user id") is { } error)
        {
            throw new UsageException(error);
        }

        var lifetime = Options.Parse(args[1..]).Long("lifetime", 3600);
        if (lifetime is < 1 or > 7 * 24 * 3600)
        {
            throw new UsageException("--lifetime must be between 1 and 604800 seconds");
        }

        var auth = Configured();
        if (System.Text.Encoding.UTF8.GetByteCount(auth.SigningKey) < BuyerAuthSettings.MinKeyBytes)
        {
            throw new UsageException($"{BuyerAuthSettings.Section}:SigningKey (FlashSale__Auth__SigningKey) must be set to the gateway's key of at least {BuyerAuthSettings.MinKeyBytes} bytes");
        }

        Console.WriteLine(BuyerJwt.Mint(args[0], auth.SigningKey, TimeSpan.FromSeconds(lifetime), auth.Issuer, auth.Audience));
        return 0;
    }

    /// <summary>The gateway's auth settings as the environment gives them (./flashsale exports the local stack's).</summary>
    public static BuyerAuthSettings Configured() =>
        new ConfigurationBuilder().AddEnvironmentVariables().Build().GetSection(BuyerAuthSettings.Section).Get<BuyerAuthSettings>() ?? new BuyerAuthSettings();
}
