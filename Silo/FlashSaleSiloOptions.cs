using System.Net;
using Microsoft.Extensions.Options;
using MySqlConnector;

namespace OrleansFlashSale.Silo;

/// <summary>Where this silo listens and which cluster it joins (section <c>FlashSale:Silo</c>).</summary>
public sealed class FlashSaleSiloOptions
{
    public const string Section = "FlashSale:Silo";

    public string ClusterId { get; set; } = "flashsale";

    public string ServiceId { get; set; } = "flashsale";

    public int SiloPort { get; set; } = 11111;

    public int GatewayPort { get; set; } = 30000;

    /// <summary>The address other silos and clients use to reach this one.</summary>
    public string AdvertisedAddress { get; set; } = "127.0.0.1";

    /// <summary>
    /// Registers the Orleans dashboard's grains and call profiler (the gateway shows the pages, with
    /// <c>FlashSale:Gateway:OrleansDashboard</c>). Off by default: the profiler sees every grain call and the
    /// dashboard collects every Orleans metric each second, CPU the purchase path needs (docs/performance.md, "The
    /// Orleans dashboard's cost").
    /// </summary>
    public bool OrleansDashboard { get; set; }
}

public sealed class FlashSaleSiloOptionsValidator : IValidateOptions<FlashSaleSiloOptions>
{
    public ValidateOptionsResult Validate(string? name, FlashSaleSiloOptions options)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(options.ClusterId))
        {
            errors.Add($"{FlashSaleSiloOptions.Section}:ClusterId is required.");
        }

        if (string.IsNullOrWhiteSpace(options.ServiceId))
        {
            errors.Add($"{FlashSaleSiloOptions.Section}:ServiceId is required.");
        }

        if (options.SiloPort is < 1 or > 65535)
        {
            errors.Add($"{FlashSaleSiloOptions.Section}:SiloPort must be a TCP port (1-65535).");
        }

        if (options.GatewayPort is < 1 or > 65535 || options.GatewayPort == options.SiloPort)
        {
            errors.Add($"{FlashSaleSiloOptions.Section}:GatewayPort must be a TCP port (1-65535) other than SiloPort.");
        }

        if (!IPAddress.TryParse(options.AdvertisedAddress, out _))
        {
            errors.Add($"{FlashSaleSiloOptions.Section}:AdvertisedAddress must be an IP address.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

/// <summary>The MySQL (MariaDB) database holding grain state (section <c>FlashSale:MySql</c>).</summary>
public sealed class FlashSaleMySqlOptions
{
    public const string Section = "FlashSale:MySql";

    /// <summary>MySqlConnector connection string, e.g. <c>Server=127.0.0.1;Port=13306;Database=flashsale;User ID=flashsale;Password=...</c>.</summary>
    public string ConnectionString { get; set; } = "";

    /// <summary>Apply the SQL files of <c>deploy/sql</c> at start (idempotent).</summary>
    public bool ApplySchema { get; set; } = true;

    public override string ToString()
    {
        try
        {
            var builder = new MySqlConnectionStringBuilder(ConnectionString);
            if (builder.ContainsKey("Password"))
            {
                builder.Password = "***";
            }

            return builder.ConnectionString;
        }
        catch (ArgumentException)
        {
            return "(unreadable connection string)";
        }
    }
}

public sealed class FlashSaleMySqlOptionsValidator : IValidateOptions<FlashSaleMySqlOptions>
{
    public ValidateOptionsResult Validate(string? name, FlashSaleMySqlOptions options)
    {
        if (string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            return ValidateOptionsResult.Fail($"{FlashSaleMySqlOptions.Section}:ConnectionString is required (Server=...;Port=...;Database=...;User ID=...;Password=...).");
        }

        try
        {
            var builder = new MySqlConnectionStringBuilder(options.ConnectionString);
            if (string.IsNullOrEmpty(builder.Database))
            {
                return ValidateOptionsResult.Fail($"{FlashSaleMySqlOptions.Section}:ConnectionString must name a Database.");
            }
        }
        catch (ArgumentException ex)
        {
            return ValidateOptionsResult.Fail($"{FlashSaleMySqlOptions.Section}:ConnectionString is not valid: {ex.Message}");
        }

        return ValidateOptionsResult.Success;
    }
}
