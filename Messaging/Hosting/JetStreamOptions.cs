using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;
using NATS.Client.Core;

namespace OrleansFlashSale.Messaging;

/// <summary>NATS JetStream transport of the transactional messages. The timings mirror RocketMQ's broker settings.</summary>
public sealed class JetStreamOptions
{
    public const string Section = "FlashSale:Nats";

    /// <summary>Server URL(s), comma-separated, e.g. <c>nats://127.0.0.1:14222</c>.</summary>
    public string Url { get; set; } = "";

    /// <summary>
    /// User name the server requires, with <see cref="Password"/>. Anyone who can publish to the server can add orders
    /// that the writer stores, so a connection always authenticates: by user and password, by <see cref="Token"/>, or
    /// by credentials in the URL (<c>nats://user:password@host:port</c>).
    /// </summary>
    public string User { get; set; } = "";

    /// <summary>Password of <see cref="User"/>. Never logged.</summary>
    public string Password { get; set; } = "";

    /// <summary>Authentication token, instead of a user and password. Never logged.</summary>
    public string Token { get; set; } = "";

    /// <summary>First token of every subject and stream name, so that environments can share one server.</summary>
    public string StreamPrefix { get; set; } = "FLASHSALE";

    /// <summary>Replicas of each stream (1 on a single server).</summary>
    public int Replicas { get; set; } = 1;

    /// <summary>How long a half message may stay unresolved before it is checked back (RocketMQ <c>transactionTimeOut</c>).</summary>
    public TimeSpan TransactionTimeout { get; set; } = TimeSpan.FromSeconds(6);

    /// <summary>
    /// How long a grain waits for one JetStream operation (half message, commit, rollback). The NATS client does not
    /// fail a publish while it is disconnected: it waits for the reconnect, however long the outage lasts, and a
    /// bucket grain waiting on it would hold every purchase queued behind it. After this the outcome is unknown,
    /// which the transaction protocol already handles (the check-back resolves a stray half message).
    /// </summary>
    public TimeSpan OperationTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Delay between two checks of one half message (RocketMQ <c>transactionCheckInterval</c>).</summary>
    public TimeSpan CheckInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Checks before an undecided half message is moved to the CHECKMAX stream (RocketMQ <c>transactionCheckMax</c>).</summary>
    public int MaxChecks { get; set; } = 15;

    /// <summary>How long JetStream remembers message ids to drop duplicates; see <see cref="LongestCheckBackDelay"/>.</summary>
    public TimeSpan DuplicateWindow { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// The longest time between a producer's own commit and the check-back publishing the same messages again, when
    /// the producer stopped before removing its half message: the checker answers Commit at the first check after the
    /// local transaction committed, which is at most one timeout (first check) or one interval (later checks) away.
    /// The duplicate window must be longer, or the second copy is stored.
    /// </summary>
    public TimeSpan LongestCheckBackDelay => TransactionTimeout + CheckInterval;

    /// <summary>
    /// How long the deductions stream keeps a message (JetStream <c>max_age</c>); <see cref="TimeSpan.Zero"/> keeps every
    /// message for ever. The stream has limits retention, so without an age it grows by every order ever sold. A
    /// message is read by the orders writer within seconds when the pipeline is healthy; the age only has to outlast
    /// the longest outage of the writer or MySQL that must not lose orders. Seven days is the lifetime of the Redis
    /// request records and order markers (<c>FlashSale:Deduction:RecordTtlHours</c>), after which replays and repairs
    /// of an order are gone as well.
    /// </summary>
    public TimeSpan DeductionsMaxAge { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Whether the first URL, the one NATS.Net reads credentials from, carries a user (or a token) of its own.</summary>
    internal bool HasUrlCredentials =>
        Uri.TryCreate((Url ?? "").Split(',', StringSplitOptions.TrimEntries)[0], UriKind.Absolute, out var uri) && uri.UserInfo.Length > 0;

    /// <summary>The client's credentials; settings take precedence over the URL's, as in NATS.Net itself.</summary>
    public NatsAuthOpts ToAuthOpts() => new()
    {
        Username = NullIfEmpty(User),
        Password = NullIfEmpty(Password),
        Token = NullIfEmpty(Token),
    };

    /// <summary>Without any password or token, whether in the settings or in the URL.</summary>
    public override string ToString() => $"NATS {RedactedUrl(Url ?? "")} prefix {StreamPrefix}, {CredentialsDescription()}";

    private string CredentialsDescription() =>
        NullIfEmpty(Token) is not null ? "token set"
        : NullIfEmpty(User) is not null ? $"user {User}, password {(NullIfEmpty(Password) is null ? "missing" : "set")}"
        : HasUrlCredentials ? "credentials in the URL"
        : "no credentials";

    internal static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;

    internal static string RedactedUrl(string url) =>
        string.Join(",", url.Split(',', StringSplitOptions.TrimEntries).Select(part =>
            Uri.TryCreate(part, UriKind.Absolute, out var uri) && uri.UserInfo.Length > 0
                ? new UriBuilder(uri) { UserName = "***", Password = "" }.Uri.ToString().TrimEnd('/')
                : part));
}

public sealed partial class JetStreamOptionsValidator : IValidateOptions<JetStreamOptions>
{
    private static readonly string[] Schemes = ["nats", "tls", "ws", "wss"];

    public ValidateOptionsResult Validate(string? name, JetStreamOptions options)
    {
        const string S = JetStreamOptions.Section;
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(options.Url))
        {
            errors.Add($"{S}:Url is required (e.g. nats://127.0.0.1:14222).");
        }
        else if (options.Url.Split(',', StringSplitOptions.TrimEntries)
                 .Any(u => !Uri.TryCreate(u, UriKind.Absolute, out var uri) || !Schemes.Contains(uri.Scheme) || uri.Host.Length == 0))
        {
            errors.Add($"{S}:Url must be one or more comma-separated nats://, tls://, ws:// or wss:// URLs, got '{JetStreamOptions.RedactedUrl(options.Url)}'.");
        }

        ValidateCredentials(errors, options);

        if (options.StreamPrefix is null || !PrefixPattern().IsMatch(options.StreamPrefix))
        {
            errors.Add($"{S}:StreamPrefix must be 1 to 32 letters, digits, '_' or '-' (it is a subject token and part of stream names), got '{options.StreamPrefix}'.");
        }

        if (options.Replicas is < 1 or > 5)
        {
            errors.Add($"{S}:Replicas must be between 1 and 5.");
        }

        CheckSpan(errors, "TransactionTimeout", options.TransactionTimeout);
        CheckSpan(errors, "CheckInterval", options.CheckInterval);
        CheckSpan(errors, "OperationTimeout", options.OperationTimeout);
        if (options.MaxChecks is < 1 or > 1000)
        {
            errors.Add($"{S}:MaxChecks must be between 1 and 1000.");
        }

        if (options.DuplicateWindow <= options.LongestCheckBackDelay || options.DuplicateWindow > TimeSpan.FromDays(1))
        {
            errors.Add($"{S}:DuplicateWindow ({options.DuplicateWindow}) must be longer than TransactionTimeout + CheckInterval " +
                       $"({options.LongestCheckBackDelay}, the longest check-back delay) and at most 1 day; otherwise a message " +
                       "committed by both the producer and the check-back is stored twice.");
        }

        if (options.DeductionsMaxAge != TimeSpan.Zero
            && (options.DeductionsMaxAge < TimeSpan.FromHours(1) || options.DeductionsMaxAge > TimeSpan.FromDays(3650)
                || options.DeductionsMaxAge <= options.DuplicateWindow))
        {
            errors.Add($"{S}:DeductionsMaxAge ({options.DeductionsMaxAge}) must be 0 (keep every message) or between 1 hour and 3650 days, " +
                       $"and longer than DuplicateWindow ({options.DuplicateWindow}); a shorter age drops orders the writer has not stored yet.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void ValidateCredentials(List<string> errors, JetStreamOptions options)
    {
        const string S = JetStreamOptions.Section;
        bool user = JetStreamOptions.NullIfEmpty(options.User) is not null,
            password = JetStreamOptions.NullIfEmpty(options.Password) is not null,
            token = JetStreamOptions.NullIfEmpty(options.Token) is not null;
        if (token && (user || password))
        {
            errors.Add($"{S}:Token and {S}:User/{S}:Password are two ways to authenticate: set one of them, not both.");
        }
        else if (user && !password)
        {
            errors.Add($"{S}:Password is required when {S}:User is set.");
        }
        else if (password && !user)
        {
            errors.Add($"{S}:User is required when {S}:Password is set.");
        }
        else if (!user && !token && !options.HasUrlCredentials)
        {
            errors.Add($"{S}:User and {S}:Password (or {S}:Token) are required: the NATS server must not accept anonymous " +
                       "connections, since whoever can publish to it adds orders that the writer stores.");
        }
    }

    private static void CheckSpan(List<string> errors, string key, TimeSpan value)
    {
        if (value < TimeSpan.FromMilliseconds(50) || value > TimeSpan.FromHours(1))
        {
            errors.Add($"{JetStreamOptions.Section}:{key} must be between 50 ms and 1 hour, got {value}.");
        }
    }

    [GeneratedRegex("^[A-Za-z0-9_-]{1,32}$")]
    private static partial Regex PrefixPattern();
}
