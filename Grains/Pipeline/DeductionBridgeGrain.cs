using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using Orleans.Streams;
using Orleans.Streams.Core;
using OrleansFlashSale.Messaging;
using OrleansFlashSale.Pipeline;
using OrleansFlashSale.Redis;
using StackExchange.Redis;

namespace OrleansFlashSale.Grains;

/// <summary>
/// Commits the half messages of one bucket (one stream and one activation per bucket): publishes the transaction's
/// orders as one message to the deductions stream (message id = transaction id, so JetStream drops a repeat by the
/// check-back), removes the half message, then trims the forwarded entries from the bucket's Redis log. A lost event
/// (a silo died in between) leaves the half message behind, and the check-back commits it.
/// </summary>
[ImplicitStreamSubscription(PipelineStreams.Namespace)]
[Reentrant]
public sealed class DeductionBridgeGrain : Grain, IDeductionBridgeGrain, IStreamSubscriptionObserver, IAsyncObserver<DeductionsCommitted>
{
    private readonly ITransactionalProducer _producer;
    private readonly IPipelineQueue _queue;
    private readonly RedisConnection _redis;
    private readonly ILogger<DeductionBridgeGrain> _logger;
    private readonly PipelineMetrics _metrics;
    private readonly HashSet<Task> _inFlight = [];

    /// <summary>Commits of one bucket that may run at once (each is one JetStream round trip for a whole bucket batch).</summary>
    private const int MaxCommitsInFlight = 8;

    public DeductionBridgeGrain(ITransactionalProducer producer, IPipelineQueue queue, RedisConnection redis, PipelineMetrics metrics,
        ILogger<DeductionBridgeGrain> logger)
    {
        _metrics = metrics;
        _producer = producer;
        _queue = queue;
        _redis = redis;
        _logger = logger;
    }

    public async Task OnSubscribed(IStreamSubscriptionHandleFactory handleFactory) =>
        await handleFactory.Create<DeductionsCommitted>().ResumeAsync(this);

    public async Task OnNextAsync(DeductionsCommitted item, StreamSequenceToken? token = null)
    {
        _metrics.PipelineStageReached(PipelineStage.Bridge, item.Records);

        // The stream hands this grain its next event only when this call returns. Awaiting each commit here would
        // serialise the bucket's transactions on one JetStream round trip each, and under load the backlog would
        // outlive the transaction timeout so that the check-back, not the bridge, committed most orders (seen in the
        // pipeline bench). So commits run side by side, bounded: at the bound the stream waits for one to finish.
        // Completed commits are dropped here rather than by a continuation of their own: such a continuation queues
        // behind this turn, so a loop waiting for it would spin without ever letting it run.
        _inFlight.RemoveWhere(t => t.IsCompleted);
        while (_inFlight.Count >= MaxCommitsInFlight)
        {
            await Task.WhenAny(_inFlight);
            _inFlight.RemoveWhere(t => t.IsCompleted);
        }

        var commit = CommitAsync(item);
        if (!commit.IsCompleted)
        {
            _inFlight.Add(commit);
        }
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        // Let started commits finish so their Redis log entries get trimmed; anything cut short stays with the
        // check-back, which commits from the half message.
        try
        {
            await Task.WhenAll(_inFlight.ToArray()).WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Deactivation ran out of time: the unfinished commits are still half messages, which the check-back resolves.
        }
    }

    /// <summary>Never throws: every failure is logged with the SKU and bucket and left to the check-back or repair.</summary>
    private async Task CommitAsync(DeductionsCommitted item)
    {
        var subject = _queue.DeductionsSubject(item.Sku);
        try
        {
            // Bounded: while NATS is down the client waits for the reconnect, which would hold a commit slot for
            // the whole outage; the check-back commits whatever is left.
            using var timeout = new CancellationTokenSource(_queue.OperationTimeout);
            await _producer.CommitAsync(item.Half, [PipelineJson.ToTransactionMessage(item.Half.TransactionId, item.Records, subject)], timeout.Token);
            _metrics.PipelineStageReached(PipelineStage.Published, item.Records);
        }
        catch (Exception ex)
        {
            // Not rethrown: the half message is still stored and the check-back commits it from Redis.
            BridgeLog.BridgeCommitFailed(_logger, ex, item.Sku, item.Bucket, item.Half.TransactionId, item.Records.Length);
            return;
        }

        try
        {
            // Only now, with the messages safe in JetStream, may the Redis log forget them.
            var db = await _redis.GetDatabaseAsync();
            await db.StreamDeleteAsync(RedisKeys.Log(item.Sku, item.Bucket), item.LogEntryIds.Select(id => (RedisValue)id).ToArray());
        }
        catch (Exception ex)
        {
            BridgeLog.LogTrimFailed(_logger, ex, item.Sku, item.Bucket, item.LogEntryIds.Length);
        }
    }

    public Task OnCompletedAsync() => Task.CompletedTask;

    public Task OnErrorAsync(Exception ex)
    {
        BridgeLog.BridgeStreamError(_logger, ex, this.GetPrimaryKeyString());
        return Task.CompletedTask;
    }
}
