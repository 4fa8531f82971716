using StackExchange.Redis;

namespace OrleansFlashSale.ServiceDefaults;

/// <summary>
/// The process's one Redis multiplexer, made on first use. A host that has one registers this so that its Redis calls
/// are traced from the moment the multiplexer exists; these defaults cannot know the application's connection type.
/// </summary>
public interface IRedisMultiplexerSource
{
    Task<IConnectionMultiplexer> GetMultiplexerAsync();
}
