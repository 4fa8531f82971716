using System.Globalization;

namespace OrleansFlashSale.Bench;

/// <summary>Reads one sample from a Prometheus text exposition, as the processes' <c>/metrics</c> serve it.</summary>
internal static class PrometheusText
{
    /// <summary>
    /// The value of the first sample of metric <paramref name="name"/> (with or without labels), or null when the
    /// exposition has none.
    /// </summary>
    public static double? Sample(string exposition, string name)
    {
        foreach (var line in exposition.AsSpan().EnumerateLines())
        {
            // The name must end where the line's name ends: "x_sum" is not a sample of "x".
            if (line.StartsWith(name) && line.Length > name.Length && line[name.Length] is '{' or ' '
                && double.TryParse(line[(line.LastIndexOf(' ') + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
            {
                return value;
            }
        }

        return null;
    }
}
