using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using OrleansFlashSale.Cli;
using OrleansFlashSale.Client.Api;

namespace OrleansFlashSale.UnitTests;

/// <summary>
/// The CLI signs buyer JWTs and reads FlashSale:Auth without referencing the gateway: its copies of the names, the
/// defaults and the token format must stay what the gateway reads and validates.
/// </summary>
public sealed class BuyerJwtTests
{
    private const string Key = "cli-buyer-signing-key-0123456789-abcdef";

    [Fact]
    public void The_tools_auth_settings_have_the_gateways_names_and_defaults()
    {
        var gateway = new AuthOptions();
        var tools = new BuyerAuthSettings();
        Assert.Equal(AuthOptions.Section, BuyerAuthSettings.Section);
        Assert.Equal(AuthOptions.MinKeyBytes, BuyerAuthSettings.MinKeyBytes);
        Assert.Equal((gateway.Mode, gateway.Issuer, gateway.Audience, gateway.IsJwt), (tools.Mode, tools.Issuer, tools.Audience, tools.IsJwt));
        Assert.Equal(SecurityEndpoints.PurchaseTokenHeader, DemoBuyers.PurchaseTokenHeader);
    }

    [Theory]
    [InlineData("flashsale", "flashsale-buyers")]
    [InlineData("an-identity-provider", "a-shop")]
    public async Task A_tools_token_passes_the_gateways_validation_with_its_subject_and_lifetime(string issuer, string audience)
    {
        var validation = GatewayValidation(issuer, audience);
        var now = DateTimeOffset.UtcNow;
        var token = BuyerJwt.Mint("alice", Key, TimeSpan.FromMinutes(10), issuer, audience, now);

        var result = await new JsonWebTokenHandler().ValidateTokenAsync(token, validation);
        Assert.True(result.IsValid, result.Exception?.Message);
        var jwt = (JsonWebToken)result.SecurityToken;
        Assert.Equal("alice", jwt.Subject);
        Assert.Equal(now.ToUnixTimeSeconds(), jwt.GetPayloadValue<long>("iat"));
        Assert.Equal(now.ToUnixTimeSeconds(), jwt.GetPayloadValue<long>("nbf"));
        Assert.Equal(now.ToUnixTimeSeconds() + 600, jwt.GetPayloadValue<long>("exp"));
        Assert.Equal(["aud", "exp", "iat", "iss", "nbf", "sub"], jwt.Claims.Select(c => c.Type).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task The_gateway_refuses_a_tools_token_with_another_key_audience_or_an_expired_one()
    {
        var validation = GatewayValidation("flashsale", "flashsale-buyers");
        var handler = new JsonWebTokenHandler();
        Assert.False((await handler.ValidateTokenAsync(BuyerJwt.Mint("alice", Key + "x", TimeSpan.FromMinutes(10)), validation)).IsValid);
        Assert.False((await handler.ValidateTokenAsync(BuyerJwt.Mint("alice", Key, TimeSpan.FromMinutes(10), audience: "a-shop"), validation)).IsValid);
        Assert.False((await handler.ValidateTokenAsync(
            BuyerJwt.Mint("alice", Key, TimeSpan.FromMinutes(1), now: DateTimeOffset.UtcNow.AddHours(-1)), validation)).IsValid);
    }

    [Fact]
    public void A_key_shorter_than_the_gateway_accepts_is_refused()
    {
        var error = Assert.Throws<ArgumentException>(() => BuyerJwt.Mint("alice", "short-key", TimeSpan.FromMinutes(1)));
        Assert.StartsWith("the signing key must have at least 32 bytes", error.Message, StringComparison.Ordinal);
    }

    /// <summary>The token validation of a gateway in jwt mode, as its own security registration configures it.</summary>
    private static Microsoft.IdentityModel.Tokens.TokenValidationParameters GatewayValidation(string issuer, string audience)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["FlashSale:Auth:Mode"] = "jwt",
            ["FlashSale:Auth:SigningKey"] = Key,
            ["FlashSale:Auth:Issuer"] = issuer,
            ["FlashSale:Auth:Audience"] = audience,
        }).Build();
        var services = new ServiceCollection().AddLogging().AddSingleton<IConfiguration>(configuration);
        services.AddFlashSaleSecurity(configuration);
        using var provider = services.BuildServiceProvider();
        return provider.GetRequiredService<IOptionsMonitor<JwtBearerOptions>>().Get(JwtBearerDefaults.AuthenticationScheme).TokenValidationParameters;
    }
}
