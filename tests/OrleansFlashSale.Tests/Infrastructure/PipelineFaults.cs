using OrleansFlashSale.Pipeline;
using OrleansFlashSale.Grains;

namespace OrleansFlashSale.Tests;

/// <summary>
/// The suite's fault hook, registered in every test silo in place of the inert production one: drops the next N
/// commit events right after the Redis commit, as if the silo had died there. The check-back must then commit them.
/// </summary>
public sealed class PipelineFaults : IPipelineFaults
{
    private int _dropCommitEvents;
    private int _dropped;

    /// <summary>How many commit events this hook has dropped so far.</summary>
    public int Dropped => Volatile.Read(ref _dropped);

    public void DropNextCommitEvents(int count) => Interlocked.Exchange(ref _dropCommitEvents, count);

    public bool ShouldDropCommitEvent()
    {
        while (true)
        {
            var current = Volatile.Read(ref _dropCommitEvents);
            if (current <= 0)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _dropCommitEvents, current - 1, current) == current)
            {
                Interlocked.Increment(ref _dropped);
                return true;
            }
        }
    }
}
