using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using NATS.Client.Core;
using NATS.Client.JetStream;
using OpenTelemetry.Trace;
using OrleansFlashSale.Messaging;
using OrleansFlashSale.Pipeline;
using OrleansFlashSale.ServiceDefaults;

namespace OrleansFlashSale.Tests;

/// <summary>
/// One silo and the gateway, both wired with <see cref="TelemetryExtensions.AddFlashSaleTelemetry(IServiceCollection, Microsoft.Extensions.Configuration.IConfiguration, string, string[])"/>
/// as the real hosts are, plus an in-memory span exporter on each side.
/// </summary>
public sealed class TelemetryFixture : ClusterFixture
{
    protected override short Silos => 1;

    public ConcurrentQueue<Activity> GatewaySpans { get; } = new();

    public ConcurrentQueue<Activity> SiloSpans { get; } = new();

    // No OTLP endpoint here: the in-memory exporters below are added in code, so tracing is switched on by hand.
    protected override void ConfigureSettings(IDictionary<string, string?> settings)
    {
        settings["FlashSale:Telemetry:Traces"] = "on";
        // The log-length gauge is sampled every second here, so its test waits seconds, not tens of them.
        settings["FlashSale:Deduction:LogSampleSeconds"] = "1";
    }

    protected override void ConfigureSilo(ISiloBuilder silo)
    {
        silo.AddActivityPropagation();
        silo.Services.AddFlashSaleTelemetry(Configuration, "flashsale-silo", FlashSaleMeter.Name);
        silo.Services.ConfigureOpenTelemetryTracerProvider(t => t.AddInMemoryExporter(new QueueList(SiloSpans)));
    }

    protected override void ConfigureClient(IClientBuilder client) => client.AddActivityPropagation();

    protected override void ConfigureGateway(WebApplicationBuilder gateway)
    {
        gateway.AddFlashSaleTelemetry("flashsale-gateway", FlashSaleMeter.Name);
        gateway.Services.ConfigureOpenTelemetryTracerProvider(t => t.AddInMemoryExporter(new QueueList(GatewaySpans)));
    }

    /// <summary>The in-memory exporter adds to an ICollection; a queue keeps the test's reads safe while it adds.</summary>
    private sealed class QueueList(ConcurrentQueue<Activity> queue) : ICollection<Activity>
    {
        public int Count => queue.Count;

        public bool IsReadOnly => false;

        public void Add(Activity item) => queue.Enqueue(item);

        public void Clear() => queue.Clear();

        public bool Contains(Activity item) => queue.Contains(item);

        public void CopyTo(Activity[] array, int arrayIndex) => queue.ToArray().CopyTo(array, arrayIndex);

        public bool Remove(Activity item) => throw new NotSupportedException();

        public IEnumerator<Activity> GetEnumerator() => ((IEnumerable<Activity>)queue).GetEnumerator();

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}

[CollectionDefinition(Name)]
public sealed class TelemetryCollection : ICollectionFixture<TelemetryFixture>
{
    public const string Name = "telemetry";
}

[Collection(TelemetryCollection.Name)]
public sealed partial class TelemetryTests(TelemetryFixture fixture)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Metrics_endpoint_shows_the_projects_instruments_with_their_values_and_tags()
    {
        var sale = await fixture.CreateSaleAsync("metrics", stock: 5, buckets: 1, perUserLimit: 1);
        var before = await ScrapeAsync();

        // One at a time, so that every deduction is a script call of its own: batch sizes are then exact.
        var orders = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            orders.Add(await BuyAsync(sale.Sku, $"user-{i}", $"req-{i}", HttpStatusCode.Created));
        }

        Assert.Equal(orders[2], await BuyAsync(sale.Sku, "user-2", "req-2", HttpStatusCode.OK));
        await BuyAsync(sale.Sku, "user-5", "req-5", HttpStatusCode.Conflict);
        await BuyAsync(sale.Sku, "user-6", "req-6", HttpStatusCode.Conflict);

        // The five orders travel on to MySQL: wait until the writer has committed them all.
        var after = await ScrapeUntilAsync(m => m.Sum("flashsale_pipeline_lag_milliseconds_count") - before.Sum("flashsale_pipeline_lag_milliseconds_count") >= 5);
        double Delta(string name, params (string, string)[] labels) => after.Sum(name, labels) - before.Sum(name, labels);

        Assert.Equal(5, Delta("flashsale_purchases_total", ("outcome", "Created")));
        Assert.Equal(1, Delta("flashsale_purchases_total", ("outcome", "Replayed")));
        // The gateway may answer the second refusal from its sold-out cache (learned from the first, kept 1 s),
        // which counts it on its own instrument: between the two, exactly both refusals are counted once.
        Assert.Equal(2, Delta("flashsale_purchases_total", ("outcome", "SoldOut")) + Delta("flashsale_gateway_sold_out_cached_total"));
        Assert.Equal(0, Delta("flashsale_purchases_total", ("outcome", "LimitExceeded")));

        // Five script calls of one purchase each; sold-out answers come from the bucket's memory, not from Redis.
        Assert.Equal(5, Delta("flashsale_deduct_batch_size_count"));
        Assert.Equal(5, Delta("flashsale_deduct_batch_size_sum"));
        Assert.Equal(5, Delta("flashsale_deduct_duration_milliseconds_count"));
        Assert.Equal(5, Delta("flashsale_pipeline_lag_milliseconds_count"));
        // The five orders left in one to five transactions (a bucket's transaction takes its batches for
        // TransactionEpochMilliseconds), each committed by its bucket, and each passes every stage of the pipeline
        // once, tagged by stage only.
        var transactions = Delta("flashsale_tx_resolved_total", ("outcome", "commit"), ("by", "producer"));
        Assert.InRange(transactions, 1, 5);
        foreach (var stage in new[] { "enqueued", "bridge", "published", "writer" })
        {
            Assert.Equal(transactions, Delta("flashsale_pipeline_stage_lag_milliseconds_count", ("stage", stage)));
        }

        // Every order is in exactly one group; groups are at most five, at least one.
        Assert.Equal(5, Delta("flashsale_orders_group_size_sum"));
        Assert.InRange(Delta("flashsale_orders_group_size_count"), 1, 5);
        Assert.Equal(Delta("flashsale_orders_group_size_count"), Delta("flashsale_orders_transactions_total", ("outcome", "committed"), ("flavor", "MariaDb")));
        // The lag histogram's buckets are the advised ones, so an alert on "p99 over 1 s" has a boundary to use.
        Assert.Contains(after.Samples, s => s.Name == "flashsale_pipeline_lag_milliseconds_bucket" && s.Labels.GetValueOrDefault("le") == "1000");

        // Orleans' own meter and ASP.NET Core's request metrics, by route template (never by SKU or order id).
        Assert.Contains(after.Samples, s => s.Name.StartsWith("orleans_", StringComparison.Ordinal));
        Assert.Equal(8, Delta("http_server_request_duration_seconds_count", ("http_route", "/api/sales/{sku}/purchases"), ("http_request_method", "POST")));
        // No user, request or order id ever becomes a label value.
        Assert.DoesNotContain(after.Samples, s => s.Labels.Values.Any(v => v.Contains("user-", StringComparison.Ordinal) || v.Contains(sale.Sku, StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Check_backs_and_dead_letters_are_counted()
    {
        var sale = await fixture.CreateSaleAsync("checks", stock: 3, buckets: 1, perUserLimit: 1);
        var before = await ScrapeAsync();

        // The commit event of the next script call is dropped, as if the silo died after the Redis commit: the
        // check-back must find the order in Redis and commit it.
        var faults = fixture.Cluster.Silos[0].ServiceProvider.GetRequiredService<PipelineFaults>();
        faults.DropNextCommitEvents(1);
        await BuyAsync(sale.Sku, "user-0", "req-0", HttpStatusCode.Created);
        // The commit event leaves when the bucket's transaction closes, up to TransactionEpochMilliseconds after the answer.
        await TestDb.WaitUntilAsync(() => Task.FromResult(faults.Dropped >= 1), Patience);
        Assert.Equal(1, faults.Dropped);

        // A message no writer can read goes to the dead-letter stream.
        var nats = fixture.Cluster.Silos[0].ServiceProvider.GetRequiredService<JetStreamConnection>();
        var ack = await nats.JetStream.PublishAsync(nats.Topology.Deductions(sale.Sku), "not json"u8.ToArray(),
            headers: new NatsHeaders { ["Nats-Msg-Id"] = "garbage-" + sale.Sku });
        ack.EnsureSuccess();

        var after = await ScrapeUntilAsync(m =>
            m.Sum("flashsale_dead_letters_total", ("reason", "unreadable")) > before.Sum("flashsale_dead_letters_total", ("reason", "unreadable"))
            && m.Sum("flashsale_pipeline_lag_milliseconds_count") > before.Sum("flashsale_pipeline_lag_milliseconds_count"));
        double Delta(string name, params (string, string)[] labels) => after.Sum(name, labels) - before.Sum(name, labels);

        Assert.Equal(1, Delta("flashsale_dead_letters_total", ("reason", "unreadable")));
        Assert.Equal(0, Delta("flashsale_dead_letters_total", ("reason", "drift")));
        Assert.Equal(1, Delta("flashsale_tx_checks_total", ("state", "commit")));
        Assert.Equal(1, Delta("flashsale_tx_resolved_total", ("outcome", "commit"), ("by", "check")));
        Assert.Equal(0, Delta("flashsale_tx_resolved_total", ("outcome", "commit"), ("by", "producer")));
        await fixture.AssertNoDriftAsync(sale.Sku);
    }

    [Fact]
    public async Task The_log_length_gauge_reports_the_entries_XLEN_finds_in_the_deduction_logs_of_active_buckets()
    {
        var sale = await fixture.CreateSaleAsync("loglen", stock: 5, buckets: 1, perUserLimit: 1);
        // A purchase activates the bucket, whose timer samples its log; the bridge trims the order's entry.
        await BuyAsync(sale.Sku, "user-0", "req-0", HttpStatusCode.Created);
        var db = fixture.Redis.GetDatabase();
        var log = OrleansFlashSale.Redis.RedisKeys.Log(sale.Sku, 0);
        await WaitUntilAsync(() => db.StreamLength(log) == 0);

        using var gauge = new LogLengthGauge(fixture.Cluster.Silos[0].ServiceProvider.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>());
        // What the other active buckets of this silo (earlier tests' sales) report: the same over two sampling periods.
        long settled;
        while (true)
        {
            var first = gauge.Read();
            await Task.Delay(TimeSpan.FromSeconds(2.5));
            settled = Assert.NotNull(gauge.Read());
            if (first == settled)
            {
                break;
            }
        }

        // Three entries no order belongs to (verify ignores them): the gauge counts what Redis has, not what the bucket wrote.
        for (var i = 0; i < 3; i++)
        {
            await db.StreamAddAsync(log, "probe", i);
        }

        await WaitUntilAsync(() => gauge.Read() == settled + 3);
        var scrape = await ScrapeUntilAsync(m => m.Sum("flashsale_redis_log_length") == settled + 3);
        Assert.Contains(scrape.Samples, s => s.Name == "flashsale_redis_log_length");

        Assert.Equal(3, await db.StreamTrimAsync(log, 0));
        await WaitUntilAsync(() => gauge.Read() == settled);
    }

    [Fact]
    public async Task A_purchase_is_one_trace_from_the_gateway_through_the_grains_to_Redis()
    {
        var sale = await fixture.CreateSaleAsync("trace", stock: 10, buckets: 2, perUserLimit: 1);
        // The caller's trace id, so the spans of this one request can be told from every other.
        var traceId = ActivityTraceId.CreateRandom();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/sales/{sale.Sku}/purchases")
        {
            Content = JsonContent.Create(new { userId = "tracer", quantity = 1, requestId = "trace-1" }),
        };
        request.Headers.Add("traceparent", $"00-{traceId}-{ActivitySpanId.CreateRandom()}-01");
        var response = await fixture.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);

        await WaitUntilAsync(() => fixture.SiloSpans.Any(s => s.TraceId == traceId && IsRedis(s)));
        var gateway = fixture.GatewaySpans.Where(s => s.TraceId == traceId).ToArray();
        var silo = fixture.SiloSpans.Where(s => s.TraceId == traceId).ToArray();

        var server = Assert.Single(gateway, s => s.Kind == ActivityKind.Server && s.Source.Name == "Microsoft.AspNetCore");
        Assert.Equal("/api/sales/{sku}/purchases", server.GetTagItem("http.route"));
        // The gateway's grain call is a child of its HTTP span (after the sale lookup, another child) ...
        var call = Assert.Single(gateway, s => s.Kind == ActivityKind.Client && s.Source.Name.StartsWith("Microsoft.Orleans", StringComparison.Ordinal)
            && s.ParentSpanId == server.SpanId && s.DisplayName.StartsWith("IQuotaGrain/", StringComparison.Ordinal));
        // ... the quota grain's activation in the silo a child of that call ...
        var quota = Assert.Single(silo, s => s.Kind == ActivityKind.Server && s.ParentSpanId == call.SpanId);
        Assert.Contains("IQuotaGrain", quota.DisplayName, StringComparison.Ordinal);
        // ... and the bucket grain and Redis below it, all in the same trace.
        Assert.Contains(silo, s => s.Kind == ActivityKind.Server && s.DisplayName.Contains("IBucketGrain", StringComparison.Ordinal));
        var silosSpanIds = silo.Select(s => s.SpanId).ToHashSet();
        var redis = silo.Where(IsRedis).ToArray();
        Assert.NotEmpty(redis);
        Assert.All(redis, r => Assert.Contains(r.ParentSpanId, silosSpanIds));
        Assert.Contains(redis, r => r.DisplayName.StartsWith("EVAL", StringComparison.Ordinal));
    }

    private static bool IsRedis(Activity span) => span.Source.Name.Contains("StackExchangeRedis", StringComparison.Ordinal);

    private async Task<string> BuyAsync(string sku, string user, string requestId, HttpStatusCode expected)
    {
        var response = await fixture.Http.PostAsJsonAsync($"/api/sales/{sku}/purchases", new { userId = user, quantity = 1, requestId });
        Assert.Equal(expected, response.StatusCode);
        return expected is HttpStatusCode.Created or HttpStatusCode.OK
            ? (await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>()).GetProperty("orderId").GetString()!
            : "";
    }

    private async Task<Scrape> ScrapeAsync()
    {
        var response = await fixture.Http.GetAsync(TelemetryExtensions.MetricsPath);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType, StringComparison.Ordinal);
        return Scrape.Parse(await response.Content.ReadAsStringAsync());
    }

    private async Task<Scrape> ScrapeUntilAsync(Func<Scrape, bool> condition)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (true)
        {
            var scrape = await ScrapeAsync();
            if (condition(scrape))
            {
                return scrape;
            }

            Assert.True(DateTime.UtcNow < deadline, "the metrics never reached the expected values:\n" + scrape.Text);
            await Task.Delay(250);
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the condition never held");
            await Task.Delay(100);
        }
    }

    /// <summary>The silo's <c>flashsale.redis.log_length</c> as a listener reads it; null while the silo reports none.</summary>
    private sealed class LogLengthGauge : IDisposable
    {
        private readonly System.Diagnostics.Metrics.MeterListener _listener = new();
        private long? _value;

        public LogLengthGauge(System.Diagnostics.Metrics.IMeterFactory silo)
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (ReferenceEquals(instrument.Meter.Scope, silo) && instrument.Meter.Name == FlashSaleMeter.Name
                    && instrument.Name == "flashsale.redis.log_length")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((_, value, _, _) => _value = value);
            _listener.Start();
        }

        public long? Read()
        {
            _value = null;
            _listener.RecordObservableInstruments();
            return _value;
        }

        public void Dispose() => _listener.Dispose();
    }

    /// <summary>Prometheus text exposition, read into samples (name, labels, value).</summary>
    private sealed partial class Scrape
    {
        public required string Text { get; init; }

        public required List<(string Name, Dictionary<string, string> Labels, double Value)> Samples { get; init; }

        /// <summary>Sum over the samples of <paramref name="name"/> whose labels include all of <paramref name="labels"/>.</summary>
        public double Sum(string name, params (string Key, string Value)[] labels) => Samples
            .Where(s => s.Name == name && labels.All(l => s.Labels.GetValueOrDefault(l.Key) == l.Value))
            .Sum(s => s.Value);

        public static Scrape Parse(string text)
        {
            var samples = new List<(string, Dictionary<string, string>, double)>();
            foreach (var line in text.Split('\n'))
            {
                if (line.Length == 0 || line[0] == '#')
                {
                    continue;
                }

                var match = SampleLine().Match(line);
                Assert.True(match.Success, $"not a Prometheus sample line: {line}");
                var labels = LabelPair().Matches(match.Groups["labels"].Value)
                    .ToDictionary(m => m.Groups["k"].Value, m => m.Groups["v"].Value);
                samples.Add((match.Groups["name"].Value, labels, double.Parse(match.Groups["value"].Value, CultureInfo.InvariantCulture)));
            }

            return new Scrape { Text = text, Samples = samples };
        }

        [GeneratedRegex("""^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>.*)\})? (?<value>\S+)( \d+)?$""")]
        private static partial Regex SampleLine();

        [GeneratedRegex(@"(?<k>[a-zA-Z_][a-zA-Z0-9_]*)=""(?<v>(?:[^""\\]|\\.)*)""")]
        private static partial Regex LabelPair();
    }
}
