using Microsoft.Extensions.Options;

namespace OrleansFlashSale.Client.Api.Admission;

/// <summary>
/// Purchases one gateway process lets into the cluster at a time (section <c>FlashSale:Gateway:Admission</c>).
/// Beyond <see cref="MaxConcurrentPurchases"/> a purchase waits in a short queue; a full queue or a wait longer than
/// <see cref="QueueTimeout"/> is answered 429 at once, so an overloaded gateway sheds load instead of piling up
/// requests until memory or the cluster's response timeout gives out.
/// </summary>
public sealed class AdmissionOptions
{
    public const string Section = "FlashSale:Gateway:Admission";

    /// <summary>False lets every purchase through (no concurrency bound, no rate limits).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Purchases being served at once by this process.</summary>
    public int MaxConcurrentPurchases { get; set; } = 512;

    /// <summary>Purchases allowed to wait for a slot; more are refused at once (0 = no queue).</summary>
    public int QueueLimit { get; set; } = 1024;

    /// <summary>Longest wait in the queue before the purchase is refused.</summary>
    public TimeSpan QueueTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Retry-After (seconds) sent with an "overloaded" answer.</summary>
    public int RetryAfterSeconds { get; set; } = 1;
}

/// <summary>One token bucket per key: <see cref="TokenLimit"/> requests at once, then <see cref="TokensPerPeriod"/> more every <see cref="ReplenishmentPeriod"/>.</summary>
public sealed class TokenBucketSettings
{
    /// <summary>Bucket size (the burst); 0 turns this limit off.</summary>
    public int TokenLimit { get; set; }

    public int TokensPerPeriod { get; set; }

    public TimeSpan ReplenishmentPeriod { get; set; } = TimeSpan.FromSeconds(1);

    public bool IsOn => TokenLimit > 0;
}

/// <summary>Per-buyer and per-client-address purchase rates (section <c>FlashSale:Gateway:RateLimits</c>).</summary>
public sealed class RateLimitOptions
{
    public const string Section = "FlashSale:Gateway:RateLimits";

    /// <summary>
    /// Per buyer and sale (the authenticated subject when there is one, else the body's userId). A person clicking "buy" does
    /// not need more than a few purchases a second; a script hammering one account does.
    /// </summary>
    public TokenBucketSettings PerUser { get; set; } = new() { TokenLimit = 20, TokensPerPeriod = 10 };

    /// <summary>
    /// Per client IP address as the gateway sees it. Generous on purpose: behind a NAT or a proxy one address is many
    /// buyers, and the demo sends its thousands of purchases from one address.
    /// </summary>
    public TokenBucketSettings PerIp { get; set; } = new() { TokenLimit = 10_000, TokensPerPeriod = 5_000 };
}

public sealed class AdmissionOptionsValidator : IValidateOptions<AdmissionOptions>
{
    public ValidateOptionsResult Validate(string? name, AdmissionOptions options)
    {
        var errors = new List<string>();
        if (options.MaxConcurrentPurchases is < 1 or > 100_000)
        {
            errors.Add($"{AdmissionOptions.Section}:MaxConcurrentPurchases must be between 1 and 100000 (got {options.MaxConcurrentPurchases}).");
        }

        if (options.QueueLimit is < 0 or > 1_000_000)
        {
            errors.Add($"{AdmissionOptions.Section}:QueueLimit must be between 0 and 1000000 (got {options.QueueLimit}).");
        }

        if (options.QueueTimeout < TimeSpan.FromMilliseconds(1) || options.QueueTimeout > TimeSpan.FromSeconds(60))
        {
            errors.Add($"{AdmissionOptions.Section}:QueueTimeout must be between 00:00:00.001 and 00:01:00 (got {options.QueueTimeout}).");
        }

        if (options.RetryAfterSeconds is < 1 or > 3600)
        {
            errors.Add($"{AdmissionOptions.Section}:RetryAfterSeconds must be between 1 and 3600 (got {options.RetryAfterSeconds}).");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

public sealed class RateLimitOptionsValidator : IValidateOptions<RateLimitOptions>
{
    public ValidateOptionsResult Validate(string? name, RateLimitOptions options)
    {
        var errors = new List<string>();
        Check(options.PerUser, nameof(RateLimitOptions.PerUser), errors);
        Check(options.PerIp, nameof(RateLimitOptions.PerIp), errors);
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void Check(TokenBucketSettings bucket, string name, List<string> errors)
    {
        var prefix = $"{RateLimitOptions.Section}:{name}";
        if (bucket.TokenLimit is < 0 or > 10_000_000)
        {
            errors.Add($"{prefix}:TokenLimit must be between 0 (off) and 10000000 (got {bucket.TokenLimit}).");
        }

        if (!bucket.IsOn)
        {
            return;
        }

        if (bucket.TokensPerPeriod < 1 || bucket.TokensPerPeriod > bucket.TokenLimit)
        {
            errors.Add($"{prefix}:TokensPerPeriod must be between 1 and TokenLimit ({bucket.TokenLimit}) (got {bucket.TokensPerPeriod}).");
        }

        if (bucket.ReplenishmentPeriod < TimeSpan.FromMilliseconds(1) || bucket.ReplenishmentPeriod > TimeSpan.FromDays(1))
        {
            errors.Add($"{prefix}:ReplenishmentPeriod must be between 00:00:00.001 and 1.00:00:00 (got {bucket.ReplenishmentPeriod}).");
        }
    }
}
