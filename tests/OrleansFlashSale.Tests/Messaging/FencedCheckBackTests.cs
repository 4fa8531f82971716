using Microsoft.Extensions.Options;
using OrleansFlashSale.Grains;
using OrleansFlashSale.Messaging;
using OrleansFlashSale.Pipeline;
using OrleansFlashSale.Redis;
using StackExchange.Redis;

namespace OrleansFlashSale.Tests.Messaging;

/// <summary>
/// A check-back rollback is final. A bucket's script is held on its way to the real Redis (a TCP proxy holds the
/// bucket's connection) past the transaction timeout; the real check-back (TransactionCheckService on the real
/// JetStream, RedisTransactionChecker on its own connection) rolls the transaction back; then the script is released.
/// It must deduct nothing: no unit gone, no request record that a replay would answer with, no order published.
/// </summary>
public sealed class FencedCheckBackTests : IAsyncLifetime
{
    private readonly string _prefix = MessagingHost.NewPrefix("FCB");

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => MessagingHost.DeleteStreamsAsync(_prefix);

    [Theory]
    [InlineData(HalfPayload.Epoch)]
    [InlineData(HalfPayload.HomePurchase)]
    [InlineData(HalfPayload.Deduction)]
    public async Task A_script_that_reaches_Redis_after_the_rollback_deducts_nothing(string kind)
    {
        await using var rig = await Rig.StartAsync(_prefix);
        var (proxy, messaging, scripts) = (rig.Proxy, rig.Messaging, rig.Scripts);

        var sku = ClusterFixture.NewSku("fence-" + kind);
        var db = rig.Db;
        await db.StringSetAsync(RedisKeys.Stock(sku, 0), 5);
        var tx = Guid.NewGuid().ToString("N");
        var order = new PendingOrder(Guid.NewGuid().ToString("N"), "r1", "u1", 1);
        // An epoch's half message announces no orders (its scripts name the transaction in the log); the others are
        // the one-batch half messages of earlier versions, still answered.
        await messaging.Producer.SendHalfAsync(tx, messaging.Topology.Deductions(sku),
            PipelineJson.Serialize(new HalfPayload(sku, 0, kind == HalfPayload.Epoch ? [] : [order], kind)), default);

        proxy.Hold();
        var script = kind != HalfPayload.Deduction
            ? RedisScripts.EvaluateAsync(rig.HeldDb, scripts.Purchase,
                [RedisKeys.Stock(sku, 0), RedisKeys.Log(sku, 0), RedisKeys.Units(sku, 0), RedisKeys.Requests(sku, 0), RedisKeys.Fence(sku, 0, tx)],
                [0, 3600, 1, 3600, tx, order.OrderId, order.UserId, order.RequestId, 1])
            : RedisScripts.EvaluateAsync(rig.HeldDb, scripts.Deduct,
                [RedisKeys.Stock(sku, 0), RedisKeys.Log(sku, 0), RedisKeys.Fence(sku, 0, tx), RedisKeys.OrderMarker(sku, 0, order.OrderId)],
                [0, 3600, tx, order.OrderId, order.UserId, order.RequestId, 1]);

        // The transaction timeout passes with the script held; the check-back answers and removes the half message.
        await messaging.EventuallyAsync(async () => await messaging.CountAsync(messaging.Topology.HalfStream) == 0, "the check-back resolves the held transaction");
        Assert.Equal("X", (string?)await db.StringGetAsync(RedisKeys.Fence(sku, 0, tx)));
        Assert.Equal(1, messaging.Metrics.Sum("flashsale.tx.resolved", "by", "check"));

        proxy.Release();
        var answer = (RedisResult[])(await script)!;
        Assert.Equal(-3, (long)answer[0]);
        Assert.Equal(5, (long)await db.StringGetAsync(RedisKeys.Stock(sku, 0)));
        Assert.False(await db.KeyExistsAsync(RedisKeys.Requests(sku, 0)), "a replay would answer an order nobody publishes");
        Assert.False(await db.KeyExistsAsync(RedisKeys.OrderMarker(sku, 0, order.OrderId)));
        Assert.False(await db.KeyExistsAsync(RedisKeys.Log(sku, 0)));
        Assert.Empty(await messaging.ReadUntilMarkerAsync(messaging.Topology.DeductionsStream, messaging.Topology.Deductions(sku)));
    }

    /// <summary>
    /// A transaction that spans batches (an epoch): its first batch deducted, its second is held past the transaction
    /// timeout. The check-back closes it for good and publishes exactly the first batch's order; the second, released
    /// after that, deducts nothing.
    /// </summary>
    [Fact]
    public async Task An_epoch_closed_by_the_check_back_publishes_its_earlier_batches_and_refuses_a_late_one()
    {
        await using var rig = await Rig.StartAsync(_prefix);
        var (proxy, messaging, scripts) = (rig.Proxy, rig.Messaging, rig.Scripts);

        var sku = ClusterFixture.NewSku("fence-epoch");
        var db = rig.Db;
        await db.StringSetAsync(RedisKeys.Stock(sku, 0), 5);
        var tx = Guid.NewGuid().ToString("N");
        await messaging.Producer.SendHalfAsync(tx, messaging.Topology.Deductions(sku),
            PipelineJson.Serialize(new HalfPayload(sku, 0, [], HalfPayload.Epoch)), default);
        Task<RedisResult> Purchase(IDatabase on, string order, string user) => RedisScripts.EvaluateAsync(on, scripts.Purchase,
            [RedisKeys.Stock(sku, 0), RedisKeys.Log(sku, 0), RedisKeys.Units(sku, 0), RedisKeys.Requests(sku, 0), RedisKeys.Fence(sku, 0, tx)],
            [0, 3600, 1, 3600, tx, order, user, "r-" + user, 1]);

        var first = (RedisResult[])(await Purchase(db, "o-first", "u1"))!;
        Assert.Equal(4, (long)first[0]);
        proxy.Hold();
        var late = Purchase(rig.HeldDb, "o-late", "u2");

        await messaging.EventuallyAsync(async () => await messaging.CountAsync(messaging.Topology.HalfStream) == 0, "the check-back resolves the open epoch");
        Assert.Equal("F", (string?)await db.StringGetAsync(RedisKeys.Fence(sku, 0, tx)));
        Assert.Equal(1, messaging.Metrics.Sum("flashsale.tx.resolved", "by", "check"));

        proxy.Release();
        Assert.Equal(-3, (long)((RedisResult[])(await late)!)[0]);
        Assert.Equal(4, (long)await db.StringGetAsync(RedisKeys.Stock(sku, 0)));
        Assert.False(await db.HashExistsAsync(RedisKeys.Requests(sku, 0), RedisKeys.RequestField("u2", "r-u2")), "a replay would answer an order nobody publishes");
        var published = await messaging.ReadUntilMarkerAsync(messaging.Topology.DeductionsStream, messaging.Topology.Deductions(sku));
        var message = Assert.Single(published);
        Assert.Equal(tx, message.MessageId);
        var record = Assert.Single(PipelineJson.ReadDeductions(message.Payload));
        Assert.Equal(("o-first", "u1", "r-u1", 1, 0), (record.OrderId, record.UserId, record.RequestId, record.Quantity, record.Bucket));
        // Published, so trimmed from the log as the bridge would.
        Assert.Equal(0, await db.StreamLengthAsync(RedisKeys.Log(sku, 0)));
    }

    /// <summary>
    /// The checker cannot reach Redis for longer than <c>MaxChecks</c> checks (its connection is held, so every check
    /// times out), as while a restarted Redis loads its data. The transaction had already deducted. Once Redis
    /// answers, the check-back still closes it and publishes its order: failed checks do not lead to CHECKMAX.
    /// </summary>
    [Fact]
    public async Task A_transaction_is_still_resolved_when_Redis_answers_after_more_failed_checks_than_MaxChecks()
    {
        const int maxChecks = 2;
        await using var rig = await Rig.StartAsync(_prefix, checkerHeld: true, maxChecks);
        var (proxy, messaging, scripts, db) = (rig.Proxy, rig.Messaging, rig.Scripts, rig.Db);

        var sku = ClusterFixture.NewSku("fence-outage");
        await db.StringSetAsync(RedisKeys.Stock(sku, 0), 5);
        var tx = Guid.NewGuid().ToString("N");
        await messaging.Producer.SendHalfAsync(tx, messaging.Topology.Deductions(sku),
            PipelineJson.Serialize(new HalfPayload(sku, 0, [], HalfPayload.Epoch)), default);
        proxy.Hold();
        var sold = (RedisResult[])(await RedisScripts.EvaluateAsync(db, scripts.Purchase,
            [RedisKeys.Stock(sku, 0), RedisKeys.Log(sku, 0), RedisKeys.Units(sku, 0), RedisKeys.Requests(sku, 0), RedisKeys.Fence(sku, 0, tx)],
            [0, 3600, 1, 3600, tx, "o-sold", "u1", "r-u1", 1]))!;
        Assert.Equal(4, (long)sold[0]);

        await messaging.EventuallyAsync(
            () => Task.FromResult(messaging.Metrics.Sum("flashsale.tx.checks", "state", "failed") > 2 * maxChecks),
            "the checker fails more than twice MaxChecks times while Redis is held");
        Assert.Equal(1, await messaging.CountAsync(messaging.Topology.HalfStream));
        Assert.Equal(0, await messaging.CountAsync(messaging.Topology.CheckMaxStream));
        Assert.Equal("C", (string?)await db.StringGetAsync(RedisKeys.Fence(sku, 0, tx)));

        proxy.Release();
        await messaging.EventuallyAsync(async () => await messaging.CountAsync(messaging.Topology.HalfStream) == 0, "the check-back resolves the transaction once Redis answers");
        Assert.Equal("F", (string?)await db.StringGetAsync(RedisKeys.Fence(sku, 0, tx)));
        Assert.Equal(0, await messaging.CountAsync(messaging.Topology.CheckMaxStream));
        Assert.Equal(0, messaging.Metrics.Sum("flashsale.tx.check_max", "reason", CheckMaxReasons.Unknown));
        var message = Assert.Single(await messaging.ReadUntilMarkerAsync(messaging.Topology.DeductionsStream, messaging.Topology.Deductions(sku)));
        Assert.Equal(tx, message.MessageId);
        Assert.Equal(["o-sold"], PipelineJson.ReadDeductions(message.Payload).Select(r => r.OrderId));
    }

    /// <summary>A half message whose payload is not a bucket's can never be answered: it goes to CHECKMAX at its first check.</summary>
    [Fact]
    public async Task A_half_message_with_a_payload_that_is_not_a_buckets_goes_to_checkmax_at_once()
    {
        await using var rig = await Rig.StartAsync(_prefix, maxChecks: 15);
        var messaging = rig.Messaging;
        var tx = Guid.NewGuid().ToString("N");
        await messaging.Producer.SendHalfAsync(tx, messaging.Topology.Deductions(ClusterFixture.NewSku("fence-garbled")), "[1,2]"u8.ToArray(), default);

        await messaging.EventuallyAsync(async () => await messaging.CountAsync(messaging.Topology.CheckMaxStream) == 1, "the half message is moved to CHECKMAX");
        Assert.Equal(1, messaging.Metrics.Sum("flashsale.tx.check_max", "reason", CheckMaxReasons.Malformed));
        Assert.Equal(0, messaging.Metrics.Sum("flashsale.tx.checks", "state", "failed"));
        Assert.Equal(0, await messaging.CountAsync(messaging.Topology.HalfStream));
    }

    /// <summary>
    /// A bucket's Redis connection through a proxy that can hold its traffic (<see cref="HeldDb"/>), the checker's own
    /// connection, and the real check-back on the real JetStream with a 1 s transaction timeout. <see cref="Db"/> is
    /// the checker's connection, or, when the checker's traffic goes through the proxy too, a direct one.
    /// </summary>
    private sealed class Rig : IAsyncDisposable
    {
        private ConnectionMultiplexer? _bucketRedis;
        private RedisConnection? _checkerRedis;
        private RedisConnection? _directRedis;

        private Rig(HoldingProxy proxy) => Proxy = proxy;

        public HoldingProxy Proxy { get; }

        public MessagingHost Messaging { get; private set; } = null!;

        public RedisScripts Scripts { get; } = new();

        public IDatabase HeldDb => _bucketRedis!.GetDatabase();

        public IDatabase Db { get; private set; } = null!;

        public static async Task<Rig> StartAsync(string prefix, bool checkerHeld = false, int maxChecks = 3)
        {
            var rig = new Rig(HoldingProxy.StartForRedis());
            try
            {
                var viaProxy = rig.Proxy.RedisOptions();
                // Long enough to see the held script's own answer once it is released.
                viaProxy.AsyncTimeout = 60_000;
                rig._bucketRedis = await ConnectionMultiplexer.ConnectAsync(viaProxy);
                rig._checkerRedis = new RedisConnection(Options.Create(checkerHeld
                    // A short timeout, so that checks fail quickly while held.
                    ? new FlashSaleRedisOptions { ConnectionString = viaProxy.ToString(includePassword: true), CommandTimeoutMs = 300 }
                    : new FlashSaleRedisOptions { ConnectionString = TestStack.Redis }));
                rig._directRedis = checkerHeld ? new RedisConnection(Options.Create(new FlashSaleRedisOptions { ConnectionString = TestStack.Redis })) : null;
                rig.Db = await (rig._directRedis ?? rig._checkerRedis).GetDatabaseAsync();
                var checker = new DeferredChecker();
                rig.Messaging = await MessagingHost.StartAsync(prefix, checker, transactionTimeout: TimeSpan.FromSeconds(1), maxChecks: maxChecks);
                checker.Inner = new RedisTransactionChecker(rig._checkerRedis, rig.Scripts, rig.Messaging.Nats, Options.Create(new DeductionOptions()));
                return rig;
            }
            catch
            {
                await rig.DisposeAsync();
                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (Messaging is not null)
            {
                await Messaging.DisposeAsync();
            }

            if (_checkerRedis is not null)
            {
                await _checkerRedis.DisposeAsync();
            }

            if (_directRedis is not null)
            {
                await _directRedis.DisposeAsync();
            }

            if (_bucketRedis is not null)
            {
                await _bucketRedis.DisposeAsync();
            }

            await Proxy.DisposeAsync();
        }
    }

    private sealed class DeferredChecker : ITransactionChecker
    {
        public ITransactionChecker? Inner { get; set; }

        private ITransactionChecker Checker => Inner ?? throw new InvalidOperationException("checker not set yet");

        public Task<TransactionCheckResult> CheckAsync(HalfMessage half, CancellationToken ct) => Checker.CheckAsync(half, ct);

        public Task CommittedAsync(HalfMessage half, TransactionCheckResult result, CancellationToken ct) => Checker.CommittedAsync(half, result, ct);
    }
}
