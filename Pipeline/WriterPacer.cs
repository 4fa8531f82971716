using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Runtime;

namespace OrleansFlashSale.Pipeline;

/// <summary>
/// The arithmetic of a pace: each message's orders push the time the next fetch may go by orders / rate. Kept apart
/// from the clock and the cluster so it can be checked on its own.
/// </summary>
public sealed class PaceBudget
{
    private readonly object _gate = new();
    private DateTimeOffset _next = DateTimeOffset.MinValue;

    /// <summary>Orders per second this writer may store; 0 = full speed.</summary>
    public double PerSecond { get; private set; }

    public void SetRate(double perSecond, DateTimeOffset now)
    {
        lock (_gate)
        {
            PerSecond = Math.Max(0, perSecond);
            // A new rate starts from now, not from a debt run up under the old one.
            _next = now;
        }
    }

    public void Charge(int orders, DateTimeOffset now)
    {
        lock (_gate)
        {
            if (PerSecond > 0)
            {
                _next = (_next > now ? _next : now).AddSeconds(orders / PerSecond);
            }
        }
    }

    /// <summary>How long the next fetch must wait; zero at full speed or once the budget has caught up.</summary>
    public TimeSpan WaitAt(DateTimeOffset now)
    {
        lock (_gate)
        {
            return PerSecond > 0 && _next > now ? _next - now : TimeSpan.Zero;
        }
    }
}

/// <summary>
/// This silo's share of the cluster's writer pace (<see cref="IWriterPaceGrain"/>): the pace divided by the active
/// silos, since every silo's writer draws from the same durable consumer. Refreshed about once a second.
/// </summary>
public sealed partial class WriterPacer(IServiceProvider services, ILogger<WriterPacer> logger)
{
    // Resolved at the first refresh, not at construction: the writer (and so this) is built with the host, and a host
    // whose options are wrong must fail on those options, not on the cluster services it never got to start.
    private IGrainFactory Grains => services.GetRequiredService<IGrainFactory>();

    private IClusterMembershipService Membership => services.GetRequiredService<IClusterMembershipService>();

    private readonly TimeProvider _time = TimeProvider.System;
    private readonly PaceBudget _budget = new();
    private WriterPace _pace = WriterPace.FullSpeed;
    private int _silos = 1;
    private bool _refreshFailed;

    public bool Paced => _budget.PerSecond > 0;

    public async Task RefreshAsync()
    {
        try
        {
            var pace = await Grains.GetGrain<IWriterPaceGrain>(0).GetAsync();
            var silos = Math.Max(1, Membership.CurrentSnapshot.Members.Values.Count(m => m.Status == SiloStatus.Active));
            if (pace != _pace || silos != _silos)
            {
                _pace = pace;
                _silos = silos;
                _budget.SetRate(pace.IsFullSpeed ? 0 : (double)pace.MaxOrdersPerSecond / silos, _time.GetUtcNow());
                PaceChanged(logger, pace.MaxOrdersPerSecond, silos);
            }

            _refreshFailed = false;
        }
        catch (Exception ex)
        {
            // The last pace read stays: a silo that cannot reach the pace grain keeps doing what it was told.
            if (!_refreshFailed)
            {
                RefreshFailed(logger, ex);
            }

            _refreshFailed = true;
        }
    }

    public void Charge(int orders) => _budget.Charge(orders, _time.GetUtcNow());

    /// <summary>How long until this writer may fetch again.</summary>
    public TimeSpan Wait => _budget.WaitAt(_time.GetUtcNow());

    [LoggerMessage(EventId = 4030, Level = LogLevel.Information, Message = "Order writer pace: {MaxOrdersPerSecond} orders/s over the cluster (0 = full speed), shared by {Silos} silos")]
    private static partial void PaceChanged(ILogger logger, int maxOrdersPerSecond, int silos);

    [LoggerMessage(EventId = 4031, Level = LogLevel.Warning, Message = "Order writer: reading the pace failed; keeping the last one")]
    private static partial void RefreshFailed(ILogger logger, Exception exception);
}
