using Microsoft.Extensions.Options;

namespace OrleansFlashSale.ClientLibrary;

public sealed class PurchaseClientOptions
{
    public const string Section = "FlashSale:Purchasing";

    /// <summary>Most purchases one grain call carries.</summary>
    public int MaxBatch { get; set; } = 256;

    /// <summary>
    /// Grain calls to one bucket that may be out at once. Purchases arriving meanwhile wait and go together in the
    /// next call, so the batch grows with the load: with one call out, a batch carries everything that arrived while
    /// the previous one was served, and every per-batch cost (grain call, script, half message, commit) is shared by
    /// as many purchases as possible. docs/hot-path.md has the figures that chose one over two.
    /// </summary>
    public int CallsInFlightPerBucket { get; set; } = 1;
}

public sealed class PurchaseClientOptionsValidator : IValidateOptions<PurchaseClientOptions>
{
    public ValidateOptionsResult Validate(string? name, PurchaseClientOptions options)
    {
        var errors = new List<string>();
        if (options.MaxBatch is < 1 or > 4096)
        {
            errors.Add($"{PurchaseClientOptions.Section}:MaxBatch must be between 1 and 4096.");
        }

        if (options.CallsInFlightPerBucket is < 1 or > 64)
        {
            errors.Add($"{PurchaseClientOptions.Section}:CallsInFlightPerBucket must be between 1 and 64.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
