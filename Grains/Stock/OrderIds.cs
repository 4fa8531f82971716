using System.Buffers.Binary;
using System.Security.Cryptography;

namespace OrleansFlashSale.Grains;

/// <summary>
/// Makes order ids: version 7 UUIDs in "N" format, as <c>Guid.CreateVersion7().ToString("N")</c> makes them (Unix
/// milliseconds first, which <see cref="Redis.RedisKeys.OrderIndex"/> reads), with the same 74 random bits from the
/// operating system's cryptographic generator. <c>Guid.CreateVersion7</c> asks the kernel for those bits once per id;
/// this asks once per <see cref="IdsPerFill"/> ids, which on a busy bucket is one system call per batch instead of one
/// per buyer. One instance per activation: it is not thread-safe.
/// </summary>
internal sealed class OrderIds(TimeProvider time)
{
    public const int IdsPerFill = 256;

    private readonly byte[] _random = new byte[IdsPerFill * 10];
    private int _next = IdsPerFill;

    public string Next()
    {
        if (_next == IdsPerFill)
        {
            RandomNumberGenerator.Fill(_random);
            _next = 0;
        }

        var random = _random.AsSpan(_next++ * 10, 10);
        Span<byte> id = stackalloc byte[16];
        // 48 bits of milliseconds, big-endian: the top two bytes of the 64-bit value are always zero before 10889.
        Span<byte> ms = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(ms, time.GetUtcNow().ToUnixTimeMilliseconds());
        ms[2..].CopyTo(id);
        id[6] = (byte)(0x70 | (random[0] & 0x0F));
        id[7] = random[1];
        id[8] = (byte)(0x80 | (random[2] & 0x3F));
        random[3..].CopyTo(id[9..]);
        return Convert.ToHexStringLower(id);
    }
}
