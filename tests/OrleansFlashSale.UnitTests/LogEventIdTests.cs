using System.Reflection;
using Microsoft.Extensions.Logging;

namespace OrleansFlashSale.UnitTests;

/// <summary>
/// Operators filter and alert on log event ids, so one id must mean one message across the silo, the grains and the
/// gateway (three ids were each used by two or three different messages).
/// </summary>
public sealed class LogEventIdTests
{
    [Fact]
    public void Every_log_message_of_the_project_has_an_event_id_of_its_own()
    {
        Assembly[] assemblies =
        [
            typeof(OrleansFlashSale.Grains.BucketGrain).Assembly,
            typeof(OrleansFlashSale.Redis.RedisConnection).Assembly,
            typeof(OrleansFlashSale.Messaging.JetStreamConnection).Assembly,
            typeof(OrleansFlashSale.Persistence.MySqlOrderStore).Assembly,
            typeof(OrleansFlashSale.Pipeline.OrderWriterService).Assembly,
            typeof(OrleansFlashSale.Silo.FlashSaleSiloOptions).Assembly,
            typeof(OrleansFlashSale.Client.GatewayHost).Assembly,
            typeof(OrleansFlashSale.Cli.CommandLine).Assembly,
            typeof(OrleansFlashSale.Bench.BenchCommand).Assembly,
            typeof(OrleansFlashSale.ClientLibrary.PurchaseClient).Assembly,
        ];
        var messages = assemblies
            .SelectMany(a => a.GetTypes())
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly))
            .Select(m => (Method: $"{m.DeclaringType!.FullName}.{m.Name}", Attribute: m.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(x => x.Attribute is not null)
            .ToList();

        // The project logs through source-generated methods throughout; finding none would mean the scan is broken.
        Assert.True(messages.Count > 50, $"only {messages.Count} [LoggerMessage] methods found");
        Assert.All(messages, m => Assert.True(m.Attribute!.EventId > 0, $"{m.Method} has no event id"));
        var shared = messages.GroupBy(m => m.Attribute!.EventId)
            .Where(g => g.Count() > 1)
            .Select(g => $"{g.Key}: {string.Join(", ", g.Select(m => m.Method))}")
            .ToList();
        Assert.Empty(shared);
    }
}
