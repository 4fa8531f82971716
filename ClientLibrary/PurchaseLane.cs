namespace OrleansFlashSale.ClientLibrary;

/// <summary>
/// The purchases waiting for one bucket, and the calls out to it: at most <c>callsInFlight</c> calls at once, each
/// carrying up to <c>maxBatch</c> purchases; whatever arrives while they are out leaves together in the next call.
/// Thread-safe: gateway requests enqueue from any thread.
/// </summary>
internal sealed class PurchaseLane(
    Func<PurchaseRequest[], Task<PurchaseReply[]>> send,
    int maxBatch,
    int callsInFlight,
    Action<Exception, int> failed)
{
    private static readonly PurchaseReply Unavailable =
        PurchaseReply.Rejected(PurchaseOutcome.Unavailable, "the cluster did not answer; retry with the same requestId");

    private readonly object _gate = new();
    private readonly Queue<Pending> _queue = new();
    private int _senders;

    public Task<PurchaseReply> PurchaseAsync(PurchaseRequest request)
    {
        var pending = new Pending(request);
        bool start;
        lock (_gate)
        {
            _queue.Enqueue(pending);
            start = _senders < callsInFlight;
            if (start)
            {
                _senders++;
            }
        }

        if (start)
        {
            _ = SendAsync();
        }

        return pending.Answer.Task;
    }

    private async Task SendAsync()
    {
        while (true)
        {
            Pending[] batch;
            lock (_gate)
            {
                if (_queue.Count == 0)
                {
                    _senders--;
                    return;
                }

                batch = new Pending[Math.Min(_queue.Count, maxBatch)];
                for (var i = 0; i < batch.Length; i++)
                {
                    batch[i] = _queue.Dequeue();
                }
            }

            try
            {
                var requests = new PurchaseRequest[batch.Length];
                for (var i = 0; i < batch.Length; i++)
                {
                    requests[i] = batch[i].Request;
                }

                var replies = await send(requests).ConfigureAwait(false);
                if (replies.Length != batch.Length)
                {
                    throw new InvalidOperationException($"{replies.Length} answers for {batch.Length} purchases");
                }

                for (var i = 0; i < batch.Length; i++)
                {
                    batch[i].Answer.TrySetResult(replies[i]);
                }
            }
            catch (Exception ex)
            {
                // The bucket may or may not have run them: each buyer is told to retry with the same request id,
                // which the request record in Redis answers with the original order if there is one.
                failed(ex, batch.Length);
                foreach (var p in batch)
                {
                    p.Answer.TrySetResult(Unavailable);
                }
            }

            // The answers' continuations were just queued to this thread's own pool queue, which it runs before
            // anything from the global queue: yielding lets callers that buy again at once (a closed loop, a
            // keep-alive connection's next request) join the next call instead of each starting a call of one.
            await Task.Yield();
        }
    }

    private sealed class Pending(PurchaseRequest request)
    {
        public PurchaseRequest Request { get; } = request;

        public TaskCompletionSource<PurchaseReply> Answer { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
