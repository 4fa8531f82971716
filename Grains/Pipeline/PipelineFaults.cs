namespace OrleansFlashSale.Grains;

/// <summary>
/// Where a test can inject a fault into the pipeline. Production registers <see cref="NoPipelineFaults"/>; only the
/// test suite registers an implementation that does something.
/// </summary>
public interface IPipelineFaults
{
    /// <summary>True to drop this commit event right after the Redis commit, as if the silo died there.</summary>
    bool ShouldDropCommitEvent();

    /// <summary>
    /// An exception to fail this bucket script with before it is sent, as the Redis client fails a command that timed
    /// out in its backlog while Redis was down; null to send it.
    /// </summary>
    Exception? UnsentScriptFailure();
}

/// <summary>No faults: what every silo runs.</summary>
public sealed class NoPipelineFaults : IPipelineFaults
{
    public bool ShouldDropCommitEvent() => false;

    public Exception? UnsentScriptFailure() => null;
}
