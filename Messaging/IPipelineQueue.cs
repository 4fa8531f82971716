namespace OrleansFlashSale.Messaging;

/// <summary>
/// The order pipeline's queue as the grains see it, transport-neutral: where a sale's deductions are published, how
/// long one broker call may take, republishing a message, and what waits in the queue for a sale. The transactional
/// protocol itself is <see cref="ITransactionalProducer"/>; a RocketMQ transport would implement both.
/// </summary>
public interface IPipelineQueue
{
    /// <summary>How long one broker call may take before the caller gives up on it.</summary>
    TimeSpan OperationTimeout { get; }

    /// <summary>Where the committed deductions of <paramref name="sku"/> go (JetStream: a subject; RocketMQ: a topic and tag).</summary>
    string DeductionsSubject(string sku);

    /// <summary>The dead letters' name, for messages to operators.</summary>
    string DeadLetterName { get; }

    /// <summary>Where half messages still undecided after the last check-back go, for messages to operators.</summary>
    string CheckMaxName { get; }

    /// <summary>
    /// Publishes one message, stored once per <see cref="OutgoingMessage.MessageId"/> within the broker's duplicate
    /// window. Returns false when the broker kept an earlier copy instead.
    /// </summary>
    Task<bool> PublishAsync(OutgoingMessage message, CancellationToken ct);

    /// <summary>
    /// What waits in the queue: half messages, dead letters and undecided half messages, overall and for
    /// <paramref name="sku"/>, and the order writer's backlog.
    /// </summary>
    Task<PipelineMessageCounts> CountAsync(string sku, CancellationToken ct);
}
