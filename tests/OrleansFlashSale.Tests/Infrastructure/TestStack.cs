using MySqlConnector;
using NATS.Client.Core;
using OrleansFlashSale.Messaging;

namespace OrleansFlashSale.Tests;

/// <summary>
/// The real services the suite runs against, read from the variables `./flashsale env` prints. Tests never mock
/// Redis, MariaDB or NATS.
/// </summary>
public static class TestStack
{
    public static string Redis => $"{Require("FLASHSALE_REDIS")},password={Require("FLASHSALE_REDIS_PASSWORD")}";

    /// <summary>For the tests' own connection: admin commands such as SCRIPT FLUSH.</summary>
    public static string RedisAdmin => Redis + ",allowAdmin=true";

    public static string MySql => new MySqlConnectionStringBuilder
    {
        Server = Require("FLASHSALE_MYSQL_HOST"),
        Port = uint.Parse(Require("FLASHSALE_MYSQL_PORT"), System.Globalization.CultureInfo.InvariantCulture),
        Database = Require("FLASHSALE_MYSQL_DATABASE"),
        UserID = Require("FLASHSALE_MYSQL_USER"),
        Password = Require("FLASHSALE_MYSQL_PASSWORD"),
    }.ConnectionString;

    /// <summary>The NATS JetStream server, e.g. <c>nats://127.0.0.1:14222</c>.</summary>
    public static string Nats => Require("FLASHSALE_NATS_URL");

    /// <summary>The user the local stack's NATS server requires (it refuses anonymous clients).</summary>
    public static string NatsUser => Require("FLASHSALE_NATS_USER");

    public static string NatsPassword => Require("FLASHSALE_NATS_PASSWORD");

    /// <summary>For the tests' own NATS connections.</summary>
    public static NatsOpts NatsOpts => new() { Url = Nats, AuthOpts = new NatsAuthOpts { Username = NatsUser, Password = NatsPassword } };

    /// <summary>Messaging options on the local stack's server, with its credentials.</summary>
    public static JetStreamOptions JetStreamOptions() => new() { Url = Nats, User = NatsUser, Password = NatsPassword };

    public const string AdminToken = "test-admin-token-0123456789";

    /// <summary>Configuration a silo of the test clusters gets, as the real silo would from appsettings and env.</summary>
    public static Dictionary<string, string?> SiloConfiguration() => new()
    {
        ["FlashSale:Redis:ConnectionString"] = Redis,
        ["FlashSale:MySql:ConnectionString"] = MySql,
        ["FlashSale:Gateway:AdminToken"] = AdminToken,
        // Pinned: the gateway's builder also reads the environment, where ./flashsale exports the local stack's auth settings.
        ["FlashSale:Auth:Mode"] = "none",
        // The test gateways run in the Production environment, which refuses mode none unless told.
        ["FlashSale:Auth:AllowNoneInProduction"] = "true",
        ["FlashSale:Auth:PurchaseTokenKey"] = "",
        ["FlashSale:Nats:Url"] = Nats,
        ["FlashSale:Nats:User"] = NatsUser,
        ["FlashSale:Nats:Password"] = NatsPassword,
        // 3 when the stack runs a NATS cluster (FLASHSALE_NATS_MODE=cluster).
        ["FlashSale:Nats:Replicas"] = Environment.GetEnvironmentVariable("FLASHSALE_NATS_REPLICAS") is { Length: > 0 } r ? r : "1",
        // Short check-back so recovery tests finish in seconds (production keeps RocketMQ's 6 s / 30 s).
        ["FlashSale:Nats:TransactionTimeout"] = "00:00:01",
        ["FlashSale:Nats:CheckInterval"] = "00:00:01",
        // Tests expire orders explicitly, per SKU, after moving the silos' clock.
        ["FlashSale:Orders:ExpirySweepSeconds"] = "0",
    };

    private static string Require(string name) =>
        Environment.GetEnvironmentVariable(name) is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException(
                $"{name} is not set. Run the suite with ./flashsale test (it starts Redis, MariaDB and NATS), " +
                "or eval \"$(./flashsale env)\" after ./flashsale up.");
}
