using System.Diagnostics.Metrics;

namespace OrleansFlashSale.Messaging;

/// <summary>
/// The transactional-messaging instruments, on the project's one meter (<see cref="FlashSaleMeter.Name"/>: the meter
/// factory hands every library of the process the same meter for that name).
/// </summary>
public sealed class MessagingMetrics
{
    private readonly Counter<long> _transactionsResolved;
    private readonly Counter<long> _transactionChecks;
    private readonly Counter<long> _transactionCheckMax;
    private readonly Counter<long> _natsFailures;

    public MessagingMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(FlashSaleMeter.Name);
        _transactionsResolved = meter.CreateCounter<long>("flashsale.tx.resolved", description: "Transactional messages committed or rolled back, by outcome and by whom (producer or check).");
        _transactionChecks = meter.CreateCounter<long>("flashsale.tx.checks", description: "Check-back answers, by state (commit, rollback, unknown; failed when the checker could not answer, invalid when it never can).");
        _transactionCheckMax = meter.CreateCounter<long>("flashsale.tx.check_max", description: "Half messages moved to the CHECKMAX stream (undecided after the last check, or malformed), by reason.");
        _natsFailures = meter.CreateCounter<long>("flashsale.nats.failures", description: "NATS calls that failed, by operation.");
    }

    /// <param name="outcome"><c>commit</c> or <c>rollback</c>.</param>
    /// <param name="by"><c>producer</c> or <c>check</c>.</param>
    public void TransactionResolved(string outcome, string by) =>
        _transactionsResolved.Add(1, new KeyValuePair<string, object?>("outcome", outcome), new KeyValuePair<string, object?>("by", by));

    /// <param name="state"><c>commit</c>, <c>rollback</c>, <c>unknown</c> or <c>failed</c>.</param>
    public void TransactionChecked(string state) =>
        _transactionChecks.Add(1, new KeyValuePair<string, object?>("state", state));

    /// <param name="reason">One of <see cref="CheckMaxReasons"/>.</param>
    public void TransactionCheckMax(string reason) =>
        _transactionCheckMax.Add(1, new KeyValuePair<string, object?>("reason", reason));

    /// <param name="operation">A fixed operation name such as <c>send-half</c>, never an id.</param>
    public void NatsFailure(string operation) =>
        _natsFailures.Add(1, new KeyValuePair<string, object?>("operation", operation));
}
