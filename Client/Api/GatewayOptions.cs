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

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
