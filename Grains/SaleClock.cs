namespace OrleansFlashSale.Grains;

/// <summary>
/// The clock of the business rules (sale windows, payment deadlines). Kept apart from the process-wide
/// <see cref="TimeProvider"/> on purpose: Orleans schedules its own timers (stream pulling, membership probes) with
/// that one, so a test that freezes or moves sale time must not freeze the runtime with it.
/// </summary>
public sealed class SaleClock(TimeProvider time)
{
    public DateTimeOffset UtcNow => time.GetUtcNow();
}
