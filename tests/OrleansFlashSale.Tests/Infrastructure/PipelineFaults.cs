using OrleansFlashSale.Pipeline;
using OrleansFlashSale.Grains;
using StackExchange.Redis;

namespace OrleansFlashSale.Tests;

/// <summary>
/// The suite's fault hook, registered in every test silo in place of the inert production one: drops the next N
/// commit events right after the Redis commit, as if the silo had died there (the check-back must then commit them),
/// or fails the next N bucket scripts before they are sent, as the Redis client does while Redis is down.
/// </summary>
public sealed class PipelineFaults : IPipelineFaults
{
    private int _dropCommitEvents;
    private int _dropped;
    private int _unsentScripts;

    public void FailNextScriptsUnsent(int count) => Interlocked.Exchange(ref _unsentScripts, count);

    public Exception? UnsentScriptFailure() => TakeOne(ref _unsentScripts)
        ? new RedisConnectionException(ConnectionFailureType.UnableToConnect, CommandFlags.None,
            "The message timed out in the backlog attempting to send because no connection became available (injected)", null,
            CommandStatus.WaitingInBacklog)
        : null;

    /// <summary>How many commit events this hook has dropped so far.</summary>
    public int Dropped => Volatile.Read(ref _dropped);

    public void DropNextCommitEvents(int count) => Interlocked.Exchange(ref _dropCommitEvents, count);

    public bool ShouldDropCommitEvent()
    {
        if (!TakeOne(ref _dropCommitEvents))
        {
            return false;
        }

        Interlocked.Increment(ref _dropped);
        return true;
    }

    private static bool TakeOne(ref int counter)
    {
        while (true)
        {
            var current = Volatile.Read(ref counter);
            if (current <= 0)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref counter, current - 1, current) == current)
            {
                return true;
            }
        }
    }
}
