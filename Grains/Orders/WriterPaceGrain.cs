using Orleans.Runtime;

namespace OrleansFlashSale.Grains;

/// <summary>
/// Holds the cluster's order-writer pace. Persisted, so a pace set for a sale's peak survives the silo that held it:
/// a writer that fell back to full speed mid-peak is the very load on MySQL the pace was set to avoid.
/// </summary>
public sealed class WriterPaceGrain(
    [PersistentState("writerPace", "flashsale")] IPersistentState<WriterPaceState> state,
    SaleClock time) : Grain, IWriterPaceGrain
{
    public Task<WriterPace> GetAsync() => Task.FromResult(state.State.Pace ?? WriterPace.FullSpeed);

    public async Task<WriterPace> SetAsync(int maxOrdersPerSecond)
    {
        if (WriterPace.Validate(maxOrdersPerSecond) is { } error)
        {
            throw new ArgumentOutOfRangeException(nameof(maxOrdersPerSecond), maxOrdersPerSecond, error);
        }

        var previous = state.State.Pace;
        state.State.Pace = new WriterPace(maxOrdersPerSecond, time.UtcNow);
        try
        {
            await state.WriteStateAsync();
        }
        catch
        {
            state.State.Pace = previous;
            throw;
        }

        return state.State.Pace;
    }
}

[GenerateSerializer, Alias("flashsale.WriterPaceState")]
public sealed class WriterPaceState
{
    [Id(0)] public WriterPace? Pace { get; set; }
}
