using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace OrleansFlashSale.ServiceDefaults;

/// <summary>What every FlashSale process does the same way: its health endpoints and how a bad setting stops it.</summary>
public static class FlashSaleHost
{
    /// <summary>Exit code of a process stopped by a bad setting (distinct from a crash, so supervisors do not loop).</summary>
    public const int ConfigurationErrorExitCode = 2;

    /// <summary>
    /// <c>/health/live</c> answers while the process runs; <c>/health/ready</c> runs the checks tagged <c>ready</c>.
    /// </summary>
    public static WebApplication MapFlashSaleHealth(this WebApplication app)
    {
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false });
        app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains("ready") });
        return app;
    }

    /// <summary>Runs the host; a setting that fails validation on start ends it with a message naming the setting.</summary>
    public static async Task<int> RunFlashSaleAsync(this WebApplication app)
    {
        try
        {
            await app.RunAsync();
            return 0;
        }
        catch (OptionsValidationException ex)
        {
            return await ConfigurationErrorAsync(string.Join(" ", ex.Failures));
        }
    }

    /// <summary>Prints a configuration error to standard error and returns the exit code for it.</summary>
    public static async Task<int> ConfigurationErrorAsync(string message)
    {
        await Console.Error.WriteLineAsync($"Configuration error: {message}");
        return ConfigurationErrorExitCode;
    }
}
