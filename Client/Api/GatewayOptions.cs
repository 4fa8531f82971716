using Microsoft.Extensions.Options;

namespace OrleansFlashSale.Client.Api;

/// <summary>Gateway settings (section <c>FlashSale:Gateway</c>).</summary>
public sealed class GatewayOptions
{
    public const string Section = "FlashSale:Gateway";

    /// <summary>Bearer token for the admin endpoints. Never logged.</summary>
    public string AdminToken { get; set; } = "";

    public string ClusterId { get; set; } = "flashsale";

    public string ServiceId { get; set; } = "flashsale";

    /// <summary>Largest request body accepted, in bytes.</summary>
    public int MaxBodyBytes { get; set; } = 16 * 1024;

    /// <summary>How long a sold-out answer is reused for new buyers (0 = every purchase asks the cluster).</summary>
    public int SoldOutCacheMs { get; set; } = 1000;

    /// <summary>
    /// Serves the Orleans dashboard's pages at <c>/orleans-dashboard/</c>; the silos must register its grains
    /// (<c>FlashSale:Silo:OrleansDashboard</c>). Off, like the silos' setting, by default; the path then answers a
    /// 404 problem saying so.
    /// </summary>
    public bool OrleansDashboard { get; set; }

    public override string ToString() => $"Gateway cluster {ClusterId}/{ServiceId}, admin token {(AdminToken.Length > 0 ? "set" : "missing")}";
}

public sealed class GatewayOptionsValidator : IValidateOptions<GatewayOptions>
{
    public ValidateOptionsResult Validate(string? name, GatewayOptions options)
    {
        var errors = new List<string>();
        if (options.AdminToken.Length < 16)
        {
            errors.Add($"{GatewayOptions.Section}:AdminToken must be set to a secret of at least 16 characters.");
        }

        if (string.IsNullOrWhiteSpace(options.ClusterId) || string.IsNullOrWhiteSpace(options.ServiceId))
        {
            errors.Add($"{GatewayOptions.Section}:ClusterId and ServiceId are required.");
        }

        if (options.MaxBodyBytes is < 256 or > 1024 * 1024)
        {
            errors.Add($"{GatewayOptions.Section}:MaxBodyBytes must be between 256 and 1048576.");
        }

        if (options.SoldOutCacheMs is < 0 or > 60_000)
        {
            errors.Add($"{GatewayOptions.Section}:SoldOutCacheMs must be between 0 and 60000.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
