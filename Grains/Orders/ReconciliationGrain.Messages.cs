using OrleansFlashSale.Messaging;

namespace OrleansFlashSale.Grains;

/// <summary>The queue side of the reconciliation: side-stream counts and the writer's backlog, with a deadline.</summary>
public sealed partial class ReconciliationGrain
{
    private Task<PipelineMessageCounts> ReadMessagesAsync(string sku) =>
        WithNatsDeadlineAsync(ReadCountsBudget, "read the message counts", ct => _queue.CountAsync(sku, ct));

    private Task<bool> PublishAsync(OutgoingMessage message) =>
        WithNatsDeadlineAsync(_queue.OperationTimeout, "store a republished order", ct => _queue.PublishAsync(message, ct));

    /// <summary>
    /// Runs a NATS operation of verify with a deadline. NATS.Net waits through a disconnection for as long as it
    /// lasts; verify answers instead, with a NATS failure the gateway turns into 503, well inside the caller's own
    /// timeout (the command line gives up after 30 s).
    /// </summary>
    private async Task<T> WithNatsDeadlineAsync<T>(TimeSpan budget, string what, Func<CancellationToken, Task<T>> operation)
    {
        using var deadline = new CancellationTokenSource(budget);
        try
        {
            return await operation(deadline.Token);
        }
        catch (OperationCanceledException ex) when (deadline.IsCancellationRequested)
        {
            ReconciliationLog.NatsTimedOut(_logger, ex, this.GetPrimaryKeyLong(), what, budget);
            throw new DependencyUnavailableException("nats", nameof(TimeoutException), $"NATS did not {what} within {budget.TotalSeconds:0.#} s.");
        }
    }

    /// <summary>Three JetStream operations' worth: stream info, then reading up to three streams side by side.</summary>
    private TimeSpan ReadCountsBudget => _queue.OperationTimeout * 3;
}
