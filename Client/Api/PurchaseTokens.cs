using System.Buffers.Binary;
using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace OrleansFlashSale.Client.Api;

public enum PurchaseTokenCheck
{
    Valid,
    Missing,
    Invalid,
    Expired,
    WrongUser,
    WrongSale,
}

/// <summary>
/// The clock of purchase tokens only. Tests fake it without faking the process <see cref="TimeProvider"/>, which the
/// cluster client and Kestrel run their timers on.
/// </summary>
public sealed class PurchaseTokenClock(TimeProvider time)
{
    public DateTimeOffset UtcNow => time.GetUtcNow();
}

/// <summary>
/// Short-lived purchase tokens: <c>base64url(payload).base64url(HMAC-SHA256(key, payload))</c>, the payload holding
/// a version, the expiry, a random nonce, the SKU and the user id, so a token is good for one user on one sale until
/// it expires. Nothing is stored: any gateway with the same key verifies it.
/// </summary>
public sealed class PurchaseTokens
{
    private const byte Version = 1;
    private const int MacBytes = 32;
    private const int NonceBytes = 16;

    /// <summary>Version, expiry, nonce, two length prefixes, a 64-character SKU and 64 UTF-16 characters of user id in UTF-8.</summary>
    private const int MaxPayloadBytes = 1 + 8 + NonceBytes + 2 + 2 + SaleRules.MaxSkuLength + (SaleRules.MaxIdLength * 3);

    private static readonly int MaxTokenLength = Base64UrlLength(MaxPayloadBytes) + 1 + Base64UrlLength(MacBytes);

    private readonly byte[] _key;
    private readonly PurchaseTokenClock _clock;

    public PurchaseTokens(IOptions<AuthOptions> options, PurchaseTokenClock clock)
        : this(options.Value.PurchaseTokenKey, TimeSpan.FromSeconds(options.Value.PurchaseTokenLifetimeSeconds), clock)
    {
    }

    public PurchaseTokens(string key, TimeSpan lifetime, PurchaseTokenClock clock)
    {
        _key = Encoding.UTF8.GetBytes(key);
        Lifetime = lifetime;
        _clock = clock;
    }

    public bool Enabled => _key.Length > 0;

    public TimeSpan Lifetime { get; }

    public DateTimeOffset UtcNow => _clock.UtcNow;

    public (string Token, DateTimeOffset ExpiresAt) Issue(string sku, string userId)
    {
        if (!Enabled)
        {
            throw new InvalidOperationException("no purchase token key is configured");
        }

        var expiresAt = _clock.UtcNow + Lifetime;
        var skuBytes = Encoding.UTF8.GetBytes(sku);
        var userBytes = Encoding.UTF8.GetBytes(userId);
        var payload = new byte[1 + 8 + NonceBytes + 2 + skuBytes.Length + 2 + userBytes.Length];
        var span = payload.AsSpan();
        span[0] = Version;
        BinaryPrimitives.WriteInt64BigEndian(span[1..], expiresAt.ToUnixTimeMilliseconds());
        RandomNumberGenerator.Fill(span.Slice(9, NonceBytes));
        var at = 9 + NonceBytes;
        BinaryPrimitives.WriteUInt16BigEndian(span[at..], (ushort)skuBytes.Length);
        skuBytes.CopyTo(span[(at + 2)..]);
        at += 2 + skuBytes.Length;
        BinaryPrimitives.WriteUInt16BigEndian(span[at..], (ushort)userBytes.Length);
        userBytes.CopyTo(span[(at + 2)..]);
        var mac = HMACSHA256.HashData(_key, payload);
        return ($"{Base64Url.EncodeToString(payload)}.{Base64Url.EncodeToString(mac)}", DateTimeOffset.FromUnixTimeMilliseconds(expiresAt.ToUnixTimeMilliseconds()));
    }

    /// <summary>
    /// The signature is checked before anything in the payload is believed; then the sale, the user and the expiry.
    /// </summary>
    public PurchaseTokenCheck Verify(string? token, string sku, string userId)
    {
        if (string.IsNullOrEmpty(token))
        {
            return PurchaseTokenCheck.Missing;
        }

        if (!Enabled || token.Length > MaxTokenLength)
        {
            return PurchaseTokenCheck.Invalid;
        }

        var dot = token.IndexOf('.', StringComparison.Ordinal);
        if (dot <= 0 || dot != token.LastIndexOf('.') || !Base64Url.IsValid(token.AsSpan(0, dot)) || !Base64Url.IsValid(token.AsSpan(dot + 1)))
        {
            return PurchaseTokenCheck.Invalid;
        }

        var payload = Base64Url.DecodeFromChars(token.AsSpan(0, dot));
        var mac = Base64Url.DecodeFromChars(token.AsSpan(dot + 1));
        // Re-encoding must give the same text: base64url has several spellings of the same bytes (trailing bits).
        if (mac.Length != MacBytes
            || !string.Equals(Base64Url.EncodeToString(payload), token[..dot], StringComparison.Ordinal)
            || !string.Equals(Base64Url.EncodeToString(mac), token[(dot + 1)..], StringComparison.Ordinal)
            || !CryptographicOperations.FixedTimeEquals(HMACSHA256.HashData(_key, payload), mac))
        {
            return PurchaseTokenCheck.Invalid;
        }

        if (!TryRead(payload, out var expiresAtMs, out var tokenSku, out var tokenUser))
        {
            return PurchaseTokenCheck.Invalid;
        }

        if (!string.Equals(tokenSku, sku, StringComparison.Ordinal))
        {
            return PurchaseTokenCheck.WrongSale;
        }

        if (!string.Equals(tokenUser, userId, StringComparison.Ordinal))
        {
            return PurchaseTokenCheck.WrongUser;
        }

        return _clock.UtcNow.ToUnixTimeMilliseconds() >= expiresAtMs ? PurchaseTokenCheck.Expired : PurchaseTokenCheck.Valid;
    }

    private static bool TryRead(ReadOnlySpan<byte> payload, out long expiresAtMs, out string sku, out string userId)
    {
        expiresAtMs = 0;
        sku = userId = "";
        if (payload.Length < 1 + 8 + NonceBytes + 2 || payload[0] != Version)
        {
            return false;
        }

        expiresAtMs = BinaryPrimitives.ReadInt64BigEndian(payload[1..]);
        var rest = payload[(9 + NonceBytes)..];
        if (!TryReadString(ref rest, out sku) || !TryReadString(ref rest, out userId))
        {
            return false;
        }

        return rest.IsEmpty;
    }

    private static bool TryReadString(ref ReadOnlySpan<byte> rest, out string value)
    {
        value = "";
        if (rest.Length < 2)
        {
            return false;
        }

        var length = BinaryPrimitives.ReadUInt16BigEndian(rest);
        if (rest.Length < 2 + length)
        {
            return false;
        }

        value = Encoding.UTF8.GetString(rest.Slice(2, length));
        rest = rest[(2 + length)..];
        return true;
    }

    private static int Base64UrlLength(int bytes) => ((bytes * 4) + 2) / 3;
}
