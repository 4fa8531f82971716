using Microsoft.Extensions.Options;

namespace OrleansFlashSale.Redis;

public sealed class DeductionOptions
{
    public const string Section = "FlashSale:Deduction";

    /// <summary>Most purchases one script call carries. Larger batches mean fewer round trips but longer scripts.</summary>
    public int MaxBatch { get; set; } = 256;

    /// <summary>Most buckets one purchase tries before giving up (overflow to siblings).</summary>
    public int MaxHops { get; set; } = 16;

    /// <summary>How long request records, order markers and transfer records stay in Redis.</summary>
    public int RecordTtlHours { get; set; } = 24 * 7;

    /// <summary>How often an active bucket reads its deduction log's length (XLEN) for <c>flashsale.redis.log_length</c>.</summary>
    public int LogSampleSeconds { get; set; } = 10;

    /// <summary>
    /// How long one transaction of a bucket (one half message, one commit) stays open for the bucket's next batches.
    /// Longer means fewer half messages, commits and stream events per order, and orders reach MySQL up to this much
    /// later; a buyer's answer never waits for it. 0 = one transaction per batch. At most a quarter of the half
    /// messages' transaction timeout (<c>FlashSale:Nats:TransactionTimeout</c>), so the check-back never meets
    /// a transaction still open.
    /// </summary>
    public int TransactionEpochMilliseconds { get; set; } = 50;

    public TimeSpan RecordTtl => TimeSpan.FromHours(RecordTtlHours);

    public TimeSpan TransactionEpoch => TimeSpan.FromMilliseconds(TransactionEpochMilliseconds);
}

public sealed class DeductionOptionsValidator : IValidateOptions<DeductionOptions>
{
    public ValidateOptionsResult Validate(string? name, DeductionOptions options)
    {
        var errors = new List<string>();
        if (options.MaxBatch is < 1 or > 4096)
        {
            errors.Add($"{DeductionOptions.Section}:MaxBatch must be between 1 and 4096.");
        }

        if (options.MaxHops is < 1 or > 1024)
        {
            errors.Add($"{DeductionOptions.Section}:MaxHops must be between 1 and 1024.");
        }

        if (options.RecordTtlHours is < 1 or > 24 * 365)
        {
            errors.Add($"{DeductionOptions.Section}:RecordTtlHours must be between 1 and 8760.");
        }

        if (options.TransactionEpochMilliseconds is < 0 or > 1000)
        {
            errors.Add($"{DeductionOptions.Section}:TransactionEpochMilliseconds must be between 0 and 1000.");
        }

        if (options.LogSampleSeconds is < 1 or > 3600)
        {
            errors.Add($"{DeductionOptions.Section}:LogSampleSeconds must be between 1 and 3600.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
