using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using OrleansFlashSale.Messaging;
using OrleansFlashSale.Pipeline;

namespace OrleansFlashSale.Tests;

/// <summary>
/// The writer's pace through the admin API on the real cluster: paced, JetStream holds the acknowledged orders and
/// MySQL gets them slowly; back at full speed, every one of them lands exactly once.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class WriterPaceTests(ClusterFixture fixture)
{
    [Fact]
    public async Task A_paced_writer_leaves_orders_in_JetStream_and_full_speed_drains_every_one_exactly_once()
    {
        var (bad, problem) = await SendAsync(HttpMethod.Put, """{"maxOrdersPerSecond":-1}""");
        Assert.Equal((HttpStatusCode.BadRequest, "invalid_request"), (bad, problem.GetProperty("code").GetString()));
        (bad, problem) = await SendAsync(HttpMethod.Put, "{}");
        Assert.Equal((HttpStatusCode.BadRequest, "invalid_request"), (bad, problem.GetProperty("code").GetString()));

        var pacers = fixture.Cluster.Silos.Select(s => s.ServiceProvider.GetRequiredService<WriterPacer>()).ToArray();
        var sale = await fixture.CreateSaleAsync("paced", stock: 40, buckets: 2, perUserLimit: 1, quotaShards: 2);
        try
        {
            var (status, pace) = await SendAsync(HttpMethod.Put, """{"maxOrdersPerSecond":1}""");
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Equal(1, pace.GetProperty("maxOrdersPerSecond").GetInt32());
            await TestDb.WaitUntilAsync(() => Task.FromResult(pacers.All(p => p.Paced)), TimeSpan.FromSeconds(10));

            // One purchase at a time, each after the one before was published (its bucket's log trimmed, so its
            // transaction closed), so each is its own transaction message: 40 messages for a pace of one order a
            // second. Each writer takes at most one fetch of 16 before the pace holds it for many seconds.
            var redis = fixture.Redis.GetDatabase();
            for (var i = 0; i < 40; i++)
            {
                Assert.Equal(PurchaseOutcome.Created, (await fixture.BuyAsync(sale, $"u{i}", "r1")).Outcome);
                await TestDb.WaitUntilAsync(async () =>
                    await redis.StreamLengthAsync(OrleansFlashSale.Redis.RedisKeys.Log(sale.Sku, 0)) +
                    await redis.StreamLengthAsync(OrleansFlashSale.Redis.RedisKeys.Log(sale.Sku, 1)) == 0, TimeSpan.FromSeconds(30));
            }

            // Published: the bridge trims a bucket's log once its orders are in the deductions stream.
            var db = fixture.Redis.GetDatabase();
            await TestDb.WaitUntilAsync(async () =>
                await db.StreamLengthAsync(OrleansFlashSale.Redis.RedisKeys.Log(sale.Sku, 0)) +
                await db.StreamLengthAsync(OrleansFlashSale.Redis.RedisKeys.Log(sale.Sku, 1)) == 0, TimeSpan.FromSeconds(30));
            var nats = fixture.Cluster.Silos[0].ServiceProvider.GetRequiredService<JetStreamConnection>();
            var consumer = await nats.JetStream.GetConsumerAsync(nats.Topology.DeductionsStream, "orders-writer");
            var stored = (await TestDb.OrdersAsync(sale.Sku)).Count;
            Assert.True(consumer.Info.NumPending > 0 && stored < 40,
                $"JetStream should still hold orders for the paced writer: {consumer.Info.NumPending} pending, {consumer.Info.NumAckPending} unacknowledged, {stored} of 40 in MySQL");

            (status, pace) = await SendAsync(HttpMethod.Put, """{"maxOrdersPerSecond":0}""");
            Assert.Equal((HttpStatusCode.OK, 0), (status, pace.GetProperty("maxOrdersPerSecond").GetInt32()));
            await TestDb.WaitUntilAsync(async () => (await TestDb.OrdersAsync(sale.Sku)).Count == 40, TimeSpan.FromSeconds(30));
            await fixture.AssertNoDriftAsync(sale.Sku);
            Assert.Equal(40, (await TestDb.OrdersAsync(sale.Sku)).Values.Sum());
        }
        finally
        {
            await fixture.Client.GetGrain<IWriterPaceGrain>(0).SetAsync(0);
        }

        var (shown, body) = await SendAsync(HttpMethod.Get, null);
        Assert.Equal((HttpStatusCode.OK, 0), (shown, body.GetProperty("maxOrdersPerSecond").GetInt32()));
    }

    private async Task<(HttpStatusCode Status, JsonElement Body)> SendAsync(HttpMethod method, string? body)
    {
        using var request = new HttpRequestMessage(method, "/api/admin/writer");
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }

        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", TestStack.AdminToken);
        using var response = await fixture.Http.SendAsync(request);
        return (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone());
    }
}
