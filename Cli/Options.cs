namespace OrleansFlashSale.Cli;

public sealed class UsageException(string message) : Exception(message);

/// <summary>Tiny <c>--name value</c> parser; unknown, repeated or malformed flags are usage errors.</summary>
public sealed class Options
{
    private readonly Dictionary<string, string> _values;

    private Options(Dictionary<string, string> values) => _values = values;

    /// <param name="allowed">The flags the command knows; empty: any.</param>
    public static Options Parse(string[] args, params string[] allowed)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || args[i].Length == 2)
            {
                throw new UsageException($"expected --name value, got '{args[i]}'");
            }

            var name = args[i][2..];
            if (allowed.Length > 0 && !allowed.Contains(name))
            {
                throw new UsageException($"unknown option '--{name}' (known: {string.Join(", ", allowed.Select(a => "--" + a))})");
            }

            if (i + 1 >= args.Length || args[i + 1].StartsWith("--", StringComparison.Ordinal))
            {
                throw new UsageException($"--{name} needs a value");
            }

            if (!values.TryAdd(name, args[++i]))
            {
                throw new UsageException($"--{name} is given twice");
            }
        }

        return new Options(values);
    }

    public string Required(string name) =>
        _values.TryGetValue(name, out var value) ? value : throw new UsageException($"--{name} is required");

    public int Int(string name, int fallback)
    {
        var value = Long(name, fallback);
        return value <= int.MaxValue ? (int)value : throw new UsageException($"--{name} must be at most {int.MaxValue}, got {value}");
    }

    /// <summary>The flag's value, or null when it is absent (the server's default applies).</summary>
    public int? IntOrNull(string name) => _values.ContainsKey(name) ? Int(name, 0) : null;

    public bool Bool(string name, bool fallback)
    {
        if (!_values.TryGetValue(name, out var text))
        {
            return fallback;
        }

        return bool.TryParse(text, out var value) ? value : throw new UsageException($"--{name} must be true or false, got '{text}'");
    }

    /// <param name="fallback">The value when the flag is absent; null makes the flag required.</param>
    public long Long(string name, long? fallback)
    {
        if (!_values.TryGetValue(name, out var text))
        {
            return fallback ?? throw new UsageException($"--{name} is required");
        }

        return long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new UsageException($"--{name} must be a non-negative whole number, got '{text}'");
    }
}
