using System.Diagnostics.Metrics;

namespace OrleansFlashSale.Persistence;

/// <summary>The MySQL store's instruments, on the project's one meter (<see cref="FlashSaleMeter.Name"/>).</summary>
public sealed class OrderStoreMetrics
{
    private readonly Histogram<int> _orderGroupSize;
    private readonly Histogram<double> _orderGroupLatency;
    private readonly Counter<long> _orderTransactions;

    public OrderStoreMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(FlashSaleMeter.Name);
        _orderGroupSize = meter.CreateHistogram<int>("flashsale.orders.group_size", description: "Orders offered per MySQL group transaction.");
        _orderGroupLatency = meter.CreateHistogram<double>("flashsale.orders.group_duration", unit: "ms", description: "Duration of one MySQL group commit, retries included.");
        _orderTransactions = meter.CreateCounter<long>("flashsale.orders.transactions", description: "MySQL group transaction attempts, by flavour and outcome.");
    }

    /// <summary>A group commit that ended (committed or not), with its size and its duration including retries.</summary>
    public void OrderGroup(int size, double milliseconds)
    {
        _orderGroupSize.Record(size);
        _orderGroupLatency.Record(milliseconds);
    }

    /// <summary>One transaction attempt of a group; <paramref name="outcome"/> is one of <see cref="OrderTransactionOutcome"/>.</summary>
    public void OrderTransaction(string flavor, string outcome) =>
        _orderTransactions.Add(1, new KeyValuePair<string, object?>("flavor", flavor), new KeyValuePair<string, object?>("outcome", outcome));
}

/// <summary>The <c>outcome</c> tag of <c>flashsale.orders.transactions</c>.</summary>
public static class OrderTransactionOutcome
{
    /// <summary>Committed and took stock.</summary>
    public const string Committed = "committed";

    /// <summary>Every order of the group was already stored; nothing to commit.</summary>
    public const string Duplicate = "duplicate";

    /// <summary>Database mode: the group found no stock for any of its new orders; nothing was stored.</summary>
    public const string SoldOut = "sold_out";

    /// <summary>MySQL had less stock than the group takes: the orders that fit were committed, the others refused.</summary>
    public const string Drift = "drift";

    /// <summary>Failed with a deadlock, lock wait timeout or lost connection, and is tried again.</summary>
    public const string Retried = "retried";

    /// <summary>Failed for good.</summary>
    public const string Failed = "failed";
}
