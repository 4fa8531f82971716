using System.Buffers.Text;
using CsCheck;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using OrleansFlashSale.Client.Api;

namespace OrleansFlashSale.UnitTests;

/// <summary>The purchase token format on its own, and the FlashSale:Auth settings.</summary>
public sealed class PurchaseTokenFormatTests
{
    private const string Key = "purchase-token-key-for-tests-0123456789";

    private static readonly Gen<string> Skus = Gen.String[Gen.Char["abcXYZ019._-"], 1, 64];

    private static readonly Gen<string> Users = Gen.String[Gen.Char.AlphaNumeric, 1, 64];

    private static (PurchaseTokens Tokens, FakeTimeProvider Time) Create(string key = Key)
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero));
        return (new PurchaseTokens(key, TimeSpan.FromSeconds(30), new PurchaseTokenClock(time)), time);
    }

    [Fact]
    public void A_token_verifies_for_its_user_and_sale_only()
    {
        var (tokens, _) = Create();
        Gen.Select(Skus, Users, Users).Sample((sku, user, other) =>
        {
            var (token, _) = tokens.Issue(sku, user);
            Assert.Equal(PurchaseTokenCheck.Valid, tokens.Verify(token, sku, user));
            Assert.Equal(other == user ? PurchaseTokenCheck.Valid : PurchaseTokenCheck.WrongUser, tokens.Verify(token, sku, other));
            Assert.Equal(PurchaseTokenCheck.WrongSale, tokens.Verify(token, sku + "x", user));
        });
    }

    [Fact]
    public void Changing_any_character_of_a_token_never_verifies()
    {
        var (tokens, _) = Create();
        const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
        Gen.Select(Skus, Users, Gen.Int[0, 1000], Gen.Char[Alphabet]).Sample((sku, user, position, replacement) =>
        {
            var (token, _) = tokens.Issue(sku, user);
            var at = position % token.Length;
            if (token[at] == replacement)
            {
                return;
            }

            var tampered = string.Concat(token.AsSpan(0, at), replacement.ToString(), token.AsSpan(at + 1));
            Assert.Equal(PurchaseTokenCheck.Invalid, tokens.Verify(tampered, sku, user));
        });
    }

    [Fact]
    public void Flipping_any_bit_of_the_payload_or_the_signature_never_verifies()
    {
        var (tokens, _) = Create();
        Gen.Select(Skus, Users, Gen.Int[0, 100_000], Gen.Bool).Sample((sku, user, bit, inMac) =>
        {
            var (token, _) = tokens.Issue(sku, user);
            var parts = token.Split('.');
            var bytes = Base64Url.DecodeFromChars(parts[inMac ? 1 : 0]);
            var at = bit % (bytes.Length * 8);
            bytes[at / 8] ^= (byte)(1 << (at % 8));
            parts[inMac ? 1 : 0] = Base64Url.EncodeToString(bytes);
            Assert.Equal(PurchaseTokenCheck.Invalid, tokens.Verify(string.Join('.', parts), sku, user));
        });
    }

    [Fact]
    public void Another_key_never_verifies_and_garbage_is_invalid_not_an_error()
    {
        var (tokens, _) = Create();
        var (other, _) = Create("another-purchase-token-key-0123456789");
        var (token, _) = other.Issue("sku-1", "alice");
        Assert.Equal(PurchaseTokenCheck.Invalid, tokens.Verify(token, "sku-1", "alice"));
        Assert.Equal(PurchaseTokenCheck.Missing, tokens.Verify(null, "sku-1", "alice"));
        Assert.Equal(PurchaseTokenCheck.Missing, tokens.Verify("", "sku-1", "alice"));
        Gen.String.Sample(garbage =>
            Assert.Contains(tokens.Verify(garbage, "sku-1", "alice"), new[] { PurchaseTokenCheck.Invalid, PurchaseTokenCheck.Missing }));
        Assert.Equal(PurchaseTokenCheck.Invalid, tokens.Verify(new string('A', 100_000) + "." + new string('A', 43), "sku-1", "alice"));
    }

    [Fact]
    public void A_token_expires_after_its_lifetime_on_the_token_clock()
    {
        var (tokens, time) = Create();
        var (token, expiresAt) = tokens.Issue("sku-1", "alice");
        Assert.Equal(time.GetUtcNow().AddSeconds(30), expiresAt);
        time.Advance(TimeSpan.FromSeconds(29.999));
        Assert.Equal(PurchaseTokenCheck.Valid, tokens.Verify(token, "sku-1", "alice"));
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(PurchaseTokenCheck.Expired, tokens.Verify(token, "sku-1", "alice"));
    }

    [Fact]
    public void Two_tokens_for_the_same_user_and_sale_differ()
    {
        var (tokens, _) = Create();
        Assert.NotEqual(tokens.Issue("sku-1", "alice").Token, tokens.Issue("sku-1", "alice").Token);
    }

    private static async Task<string> StartFailureAsync(Dictionary<string, string?> settings)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddFlashSaleSecurity(builder.Configuration);
        using var host = builder.Build();
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        return error.Message;
    }

    [Fact]
    public async Task An_unknown_auth_mode_is_named()
    {
        var message = await StartFailureAsync(new() { ["FlashSale:Auth:Mode"] = "oauth" });
        Assert.Contains("FlashSale:Auth:Mode must be 'none' or 'jwt'", message);
    }

    [Fact]
    public async Task Short_keys_are_named_and_never_printed()
    {
        var message = await StartFailureAsync(new()
        {
            ["FlashSale:Auth:Mode"] = "jwt",
            ["FlashSale:Auth:SigningKey"] = "hunter2-short",
            ["FlashSale:Auth:PurchaseTokenKey"] = "hunter2-short-too",
            ["FlashSale:Auth:PurchaseTokenLifetimeSeconds"] = "0",
        });
        Assert.Contains("FlashSale:Auth:SigningKey must be a secret of at least 32 bytes", message);
        Assert.Contains("FlashSale:Auth:PurchaseTokenKey must be empty (purchase tokens off) or a secret of at least 32 bytes", message);
        Assert.Contains("FlashSale:Auth:PurchaseTokenLifetimeSeconds must be between 1 and 3600", message);
        Assert.DoesNotContain("hunter2", message);
    }

    [Fact]
    public async Task Jwt_mode_without_a_signing_key_is_named()
    {
        var message = await StartFailureAsync(new() { ["FlashSale:Auth:Mode"] = "jwt" });
        Assert.Contains("FlashSale:Auth:SigningKey must be a secret", message);
    }

    [Fact]
    public void Auth_options_never_print_secrets()
    {
        var options = new AuthOptions { Mode = "jwt", SigningKey = "hunter2-signing-key-0123456789-abcdef", PurchaseTokenKey = "hunter2-purchase-key-0123456789-abcdef" };
        Assert.DoesNotContain("hunter2", options.ToString());
        Assert.Contains("signing key set", options.ToString());
    }

    [Fact]
    public void Default_settings_are_valid_and_mode_none()
    {
        var options = new AuthOptions();
        Assert.False(options.IsJwt);
        Assert.True(new AuthOptionsValidator().Validate(null, options).Succeeded);
    }
}
