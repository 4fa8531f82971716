using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace OrleansFlashSale.Messaging;

/// <summary>
/// RocketMQ's transaction check-back on JetStream. Every process may run it: they share one durable pull consumer on
/// the half stream, so the server hands each half message to one of them at a time.
/// </summary>
/// <remarks>
/// Timing, driven by the server so that it survives restarts (times are the server's):
/// <list type="number">
/// <item>The consumer's ack wait is <see cref="JetStreamOptions.TransactionTimeout"/>.</item>
/// <item>Delivery 1 comes at the first poll after the half message is stored (see <see cref="PollAsync"/>). It is
/// not a check: it is handed back (NAK) with a delay that ends <see cref="JetStreamOptions.TransactionTimeout"/> after
/// the message was stored. A producer that
/// resolves its transaction before then deletes the message, which also removes it from the consumer, and the checker
/// never hears of it. If delivery 1 is lost (the process stopped), the ack wait brings it back no earlier.</item>
/// <item>Delivery n (n ≥ 2) is check n − 1: the checker is asked; Commit publishes and deletes, Rollback deletes,
/// Unknown hands it back with a delay of <see cref="JetStreamOptions.CheckInterval"/>, and at check
/// <see cref="JetStreamOptions.MaxChecks"/> moves it to the CHECKMAX stream instead.</item>
/// <item>A check that fails (the checker throws: its store is down or still loading; or carrying out its answer
/// fails) is handed back with the same delay and never leads to CHECKMAX, however often it fails: the transaction
/// may have committed, and giving up on it would leave orders that buyers were told about to an operator. An outage
/// longer than <see cref="JetStreamOptions.MaxChecks"/> intervals is an ordinary event (a large Redis takes minutes
/// to load after a restart). A half message the checker declares unanswerable
/// (<see cref="InvalidHalfMessageException"/>) goes to CHECKMAX at once.</item>
/// <item>While a check runs, the ack wait is extended, so no other process gets the message meanwhile.</item>
/// </list>
/// </remarks>
public sealed class TransactionCheckService : BackgroundService
{
    /// <summary>Half messages handled at once per process; checks are rare, delivery 1 is cheap.</summary>
    private const int Concurrency = 8;

    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(30);

    // Deliveries are timed against the NATS server's clock, so the real clock, never the silo's business clock
    // (which tests fake).
    private readonly TimeProvider _clock = TimeProvider.System;
    private readonly JetStreamConnection _nats;
    private readonly JetStreamTransactionalProducer _producer;
    private readonly ITransactionChecker _checker;
    private readonly MessagingMetrics _metrics;
    private readonly ILogger<TransactionCheckService> _logger;
    private readonly ConcurrentDictionary<ulong, byte> _inHand = new();
    private readonly DurableConsumerLoop _consumer;

    public TransactionCheckService(
        JetStreamConnection nats,
        JetStreamTransactionalProducer producer,
        ITransactionChecker checker,
        MessagingMetrics metrics,
        ILogger<TransactionCheckService> logger)
    {
        _nats = nats;
        _producer = producer;
        _checker = checker;
        _metrics = metrics;
        _logger = logger;
        _consumer = new DurableConsumerLoop(nats, Topology.HalfStream, ConsumerConfig, MaxRetryDelay,
            attached: () => MessagingLog.CheckServiceStarted(_logger, Topology.HalfStream, Topology.CheckConsumer, Options.TransactionTimeout,
                Options.CheckInterval, Options.MaxChecks),
            failed: (ex, delay) =>
            {
                _metrics.NatsFailure("check-consume");
                MessagingLog.ConsumeFailed(_logger, ex, Topology.HalfStream, delay);
            });
    }

    private JetStreamOptions Options => _nats.Options;

    private JetStreamTopology Topology => _nats.Topology;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await _consumer.RunAsync(PollAsync, stoppingToken);
        MessagingLog.CheckServiceStopped(_logger);
    }

    /// <summary>
    /// Asks the server for the half messages still there, then sleeps, until stopped. Not a standing pull: with one,
    /// the server hands over every half message the moment it is stored (delivery 1, then a NAK from here), although
    /// producers resolve nearly all of them within milliseconds. Asking now and then, most are deleted by the time
    /// of the next fetch and the consumer skips them, so a healthy transaction costs the check-back nothing.
    /// </summary>
    private async Task<ConsumerRunEnd> PollAsync(INatsJSConsumer consumer, CancellationToken stoppingToken)
    {
        var poll = PollInterval(Options);
        while (!stoppingToken.IsCancellationRequested)
        {
            var fetched = 0;
            await Parallel.ForEachAsync(
                // No more than can be handled at once: a fetched message waiting behind slow checks (Redis down, each
                // check running into its timeout) past the ack wait would be delivered again, using up its checks.
                consumer.FetchNoWaitAsync<byte[]>(new NatsJSFetchOpts { MaxMsgs = Concurrency }, cancellationToken: stoppingToken),
                new ParallelOptions { MaxDegreeOfParallelism = Concurrency, CancellationToken = stoppingToken },
                async (message, ct) =>
                {
                    Interlocked.Increment(ref fetched);
                    await HandleAsync(message, ct);
                });

            // A full fetch may have left more behind: ask again at once.
            if (fetched < Concurrency)
            {
                await Task.Delay(poll, _clock, stoppingToken);
            }
        }

        // Reached only once stopping, which ends the loop anyway.
        return ConsumerRunEnd.Ended;
    }

    /// <summary>
    /// How often the check-back asks for half messages: a quarter of the transaction timeout, at most a second, so a
    /// first check comes at most that much after the timeout.
    /// </summary>
    internal static TimeSpan PollInterval(JetStreamOptions options) =>
        TimeSpan.FromTicks(Math.Min(options.TransactionTimeout.Ticks / 4, TimeSpan.FromSeconds(1).Ticks));

    private ConsumerConfig ConsumerConfig() => new(Topology.CheckConsumer)
    {
        DurableName = Topology.CheckConsumer,
        Description = "Transaction check-back: delivery 1 arms the timeout, later deliveries are checks.",
        DeliverPolicy = ConsumerConfigDeliverPolicy.All,
        AckPolicy = ConsumerConfigAckPolicy.Explicit,
        AckWait = Options.TransactionTimeout,

        // Unlimited: the server would otherwise stop delivering a message silently; MaxChecks is enforced here, where
        // the message is moved to CHECKMAX rather than left behind.
        MaxDeliver = -1,
    };

    private async Task HandleAsync(INatsJSMsg<byte[]> message, CancellationToken ct)
    {
        if (message.Metadata is not { } metadata)
        {
            // Only a consumer's deliveries reach here, and those always carry metadata.
            throw new InvalidOperationException($"A delivery on {message.Subject} has no JetStream metadata");
        }

        var sequence = metadata.Sequence.Stream;

        // A copy delivered again while this process still holds the first one: the first one answers the server.
        if (!_inHand.TryAdd(sequence, 0))
        {
            return;
        }

        try
        {
            if (metadata.NumDelivered <= 1)
            {
                // Clamped: a clock behind the server's must not push the first check further than one timeout away.
                var due = metadata.Timestamp + Options.TransactionTimeout - _clock.GetUtcNow();
                var delay = TimeSpan.FromTicks(Math.Clamp(due.Ticks, 0, Options.TransactionTimeout.Ticks));
                await message.NakAsync(new AckOpts { NakDelay = delay }, CancellationToken.None);
            }
            else
            {
                await CheckAsync(message, metadata, (int)Math.Min(metadata.NumDelivered - 1, int.MaxValue), ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Left unanswered on purpose: the server delivers it to a running process after the ack wait.
            MessagingLog.CheckAbandoned(_logger, sequence, metadata.NumDelivered);
        }
        catch (Exception ex)
        {
            _metrics.NatsFailure("check-back");
            MessagingLog.HandlingFailed(_logger, ex, sequence, metadata.NumDelivered, Options.CheckInterval);
            await RecoverAsync(message, metadata);
        }
        finally
        {
            _inHand.TryRemove(sequence, out _);
        }
    }

    private async Task CheckAsync(INatsJSMsg<byte[]> message, NatsJSMsgMetadata metadata, int checkCount, CancellationToken ct)
    {
        var sequence = metadata.Sequence.Stream;
        if (!TryReadHalf(message, metadata, checkCount, out var half))
        {
            await MoveToCheckMaxAsync(message, metadata, checkCount, CheckMaxReasons.Malformed);
            return;
        }

        var handle = new HalfMessageHandle(half.TransactionId, half.Subject, sequence.ToString(CultureInfo.InvariantCulture), half.SentAt);
        TransactionCheckResult result;
        CheckOutcome outcome;
        await using (new Lease(message, Options.TransactionTimeout, sequence, _logger))
        {
            (result, outcome) = await AskAsync(half, ct);
            _metrics.TransactionChecked(outcome switch
            {
                CheckOutcome.Answered => result.State.ToString().ToLowerInvariant(),
                CheckOutcome.Failed => "failed",
                _ => "invalid",
            });
            if (outcome == CheckOutcome.Answered)
            {
                MessagingLog.Checked(_logger, half.TransactionId, checkCount, result.State);
            }

            // Once decided, the outcome is carried out even while stopping: half done is redone by the next check.
            if (result.State == TransactionState.Commit)
            {
                await _producer.CommitAsync(handle, result.ToCommit ?? [], JetStreamTransactionalProducer.ByCheck, CancellationToken.None);
                try
                {
                    await _checker.CommittedAsync(half, result, CancellationToken.None);
                }
                catch (Exception ex)
                {
                    MessagingLog.CommittedCleanupFailed(_logger, ex, half.TransactionId);
                }
            }
            else if (result.State == TransactionState.Rollback)
            {
                await _producer.RollbackAsync(handle, JetStreamTransactionalProducer.ByCheck, CancellationToken.None);
            }
        }

        // Answer the server only once the lease has stopped: a renewal arriving after a NAK would restart the ack
        // wait and replace the NAK's delay.
        if (outcome == CheckOutcome.Invalid)
        {
            await MoveToCheckMaxAsync(message, metadata, checkCount, CheckMaxReasons.Malformed);
        }
        else if (result.State != TransactionState.Unknown)
        {
            await message.AckAsync(cancellationToken: CancellationToken.None);
        }
        else if (outcome == CheckOutcome.Answered && checkCount >= Options.MaxChecks)
        {
            await MoveToCheckMaxAsync(message, metadata, checkCount, CheckMaxReasons.Unknown);
        }
        else
        {
            await message.NakAsync(new AckOpts { NakDelay = Options.CheckInterval }, CancellationToken.None);
        }
    }

    /// <summary>
    /// The checker's answer. A failure, or a check slower than the transaction timeout, is Unknown without being an
    /// answer: it is asked again, and does not bring the half message closer to CHECKMAX.
    /// </summary>
    private async Task<(TransactionCheckResult Result, CheckOutcome Outcome)> AskAsync(HalfMessage half, CancellationToken stopping)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        timeout.CancelAfter(Options.TransactionTimeout);
        try
        {
            var result = await _checker.CheckAsync(half, timeout.Token);
            return result is null
                ? throw new InvalidOperationException($"{_checker.GetType().Name} answered null")
                : (result, CheckOutcome.Answered);
        }
        catch (InvalidHalfMessageException ex)
        {
            MessagingLog.HalfMessageInvalid(_logger, ex, half.TransactionId, half.CheckCount);
            return (TransactionCheckResult.Unknown, CheckOutcome.Invalid);
        }
        catch (Exception ex) when (!stopping.IsCancellationRequested)
        {
            MessagingLog.CheckerFailed(_logger, ex, half.TransactionId, half.CheckCount, Options.CheckInterval);
            return (TransactionCheckResult.Unknown, CheckOutcome.Failed);
        }
    }

    /// <summary>
    /// Keeps the half message (publishes a copy with the reason, then deletes it) where an operator can see it. The
    /// copy's message id is the half sequence, so a retry after a crash between the two steps stores one copy.
    /// </summary>
    private async Task MoveToCheckMaxAsync(INatsJSMsg<byte[]> message, NatsJSMsgMetadata metadata, int checkCount, string reason)
    {
        var sequence = metadata.Sequence.Stream;
        var transactionId = Header(message, TransactionHeaders.TransactionId) ?? "";
        var headers = new NatsHeaders
        {
            [TransactionHeaders.TransactionId] = transactionId,
            [TransactionHeaders.Subject] = Header(message, TransactionHeaders.Subject) ?? "",
            [TransactionHeaders.CheckCount] = checkCount.ToString(CultureInfo.InvariantCulture),
            [TransactionHeaders.Reason] = reason,
            [TransactionHeaders.HalfSequence] = sequence.ToString(CultureInfo.InvariantCulture),
            [TransactionHeaders.SentAt] = metadata.Timestamp.ToString("O", CultureInfo.InvariantCulture),
        };
        var ack = await _nats.JetStream.PublishAsync(
            Topology.CheckMaxSubject,
            message.Data ?? [],
            opts: new NatsJSPubOpts { MsgId = $"{Topology.HalfStream}:{sequence}", ExpectedStream = Topology.CheckMaxStream },
            headers: headers,
            cancellationToken: CancellationToken.None);
        if (ack.Error is { } error)
        {
            throw new NatsJSApiException(error);
        }

        await _producer.DeleteHalfAsync(sequence, CancellationToken.None);
        await message.AckAsync(cancellationToken: CancellationToken.None);
        MessagingLog.MovedToCheckMax(_logger, transactionId, reason, checkCount, sequence, Topology.CheckMaxStream);
        _metrics.TransactionCheckMax(reason);
    }

    /// <summary>
    /// After a failed delivery (carrying out an answer failed, say a publish while NATS is failing over): retried
    /// after one check interval, for as long as it fails. A commit that can never succeed (a checker answering with a
    /// subject no stream takes) keeps failing where an operator sees it, in the error log and the
    /// <c>flashsale.nats.failures</c> metric, rather than being given up with the orders it carries.
    /// </summary>
    private async Task RecoverAsync(INatsJSMsg<byte[]> message, NatsJSMsgMetadata metadata)
    {
        var sequence = metadata.Sequence.Stream;
        try
        {
            await message.NakAsync(new AckOpts { NakDelay = Options.CheckInterval }, CancellationToken.None);
        }
        catch (Exception ex)
        {
            _metrics.NatsFailure("check-back");
            MessagingLog.NakFailed(_logger, ex, sequence);
        }
    }

    private enum CheckOutcome
    {
        Answered,
        Failed,
        Invalid,
    }

    private static bool TryReadHalf(INatsJSMsg<byte[]> message, NatsJSMsgMetadata metadata, int checkCount, out HalfMessage half)
    {
        var transactionId = Header(message, TransactionHeaders.TransactionId);
        var subject = Header(message, TransactionHeaders.Subject);
        half = new HalfMessage(transactionId ?? "", subject ?? "", message.Data ?? [], metadata.Timestamp, checkCount);
        return !string.IsNullOrEmpty(transactionId) && !string.IsNullOrEmpty(subject);
    }

    private static string? Header(INatsJSMsg<byte[]> message, string name) =>
        message.Headers is { } headers && headers.TryGetLastValue(name, out var value) ? value : null;

    /// <summary>Tells the server, at once and every third of the ack wait, that the check is still running.</summary>
    private sealed class Lease : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _renewing;

        public Lease(INatsJSMsg<byte[]> message, TimeSpan ackWait, ulong sequence, ILogger logger)
        {
            _renewing = RenewAsync(message, ackWait / 3, sequence, logger, _stop.Token);
        }

        private static async Task RenewAsync(INatsJSMsg<byte[]> message, TimeSpan period, ulong sequence, ILogger logger, CancellationToken ct)
        {
            using var timer = new PeriodicTimer(period);
            try
            {
                // At once too: the delivery may have waited in the prefetch buffer for part of the ack wait.
                do
                {
                    await message.AckProgressAsync(cancellationToken: ct);
                }
                while (await timer.WaitForNextTickAsync(ct));
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                // The check ended; its answer replaces the lease.
            }
            catch (Exception ex)
            {
                MessagingLog.LeaseRenewFailed(logger, ex, sequence);
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _renewing;
            _stop.Dispose();
        }
    }
}
