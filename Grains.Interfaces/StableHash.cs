using System.Text;

namespace OrleansFlashSale;

/// <summary>
/// FNV-1a over UTF-8. string.GetHashCode is randomised per process, and routing must agree across the gateway
/// and every silo, so the hash has to be stable.
/// </summary>
public static class StableHash
{
    public static uint Of(string value)
    {
        var hash = 2166136261u;
        Span<byte> buffer = stackalloc byte[256];
        var bytes = Encoding.UTF8.GetByteCount(value) <= buffer.Length
            ? buffer[..Encoding.UTF8.GetBytes(value, buffer)]
            : Encoding.UTF8.GetBytes(value);
        foreach (var b in bytes)
        {
            hash = (hash ^ b) * 16777619u;
        }

        return hash;
    }

    public static int Bucket(string value, int count) => (int)(Of(value) % (uint)count);
}
