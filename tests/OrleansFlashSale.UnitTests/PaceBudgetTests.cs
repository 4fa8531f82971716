using OrleansFlashSale.Pipeline;

namespace OrleansFlashSale.UnitTests;

/// <summary>The arithmetic of the writer's pace, without services.</summary>
public sealed class PaceBudgetTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Each_message_pushes_the_next_fetch_by_its_orders_over_the_rate_and_full_speed_never_waits()
    {
        var budget = new PaceBudget();
        budget.Charge(1000, T0);
        Assert.Equal(TimeSpan.Zero, budget.WaitAt(T0));

        budget.SetRate(10, T0);
        budget.Charge(20, T0);
        Assert.Equal(TimeSpan.FromSeconds(2), budget.WaitAt(T0));
        budget.Charge(5, T0.AddSeconds(1));
        Assert.Equal(TimeSpan.FromSeconds(1.5), budget.WaitAt(T0.AddSeconds(1)));
        // Idle time is not saved up: a writer that waited for messages does not get a burst after.
        Assert.Equal(TimeSpan.Zero, budget.WaitAt(T0.AddSeconds(60)));
        budget.Charge(10, T0.AddSeconds(60));
        Assert.Equal(TimeSpan.FromSeconds(1), budget.WaitAt(T0.AddSeconds(60)));

        budget.SetRate(0, T0.AddSeconds(60));
        Assert.Equal(TimeSpan.Zero, budget.WaitAt(T0.AddSeconds(60)));
    }
}
