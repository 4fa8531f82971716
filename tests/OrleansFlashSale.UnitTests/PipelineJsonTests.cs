using System.Text;
using System.Text.Json;
using OrleansFlashSale.Pipeline;

namespace OrleansFlashSale.UnitTests;

public sealed class PipelineJsonTests
{
    private const string Subject = "FLASHSALE.deductions.sku-1";

    private static DeductionRecord Record(int n, string sku = "sku-1", int bucket = 2) =>
        new($"order-{n}", $"req-{n}", sku, $"user-{n}", n % 3 + 1, bucket, 1_796_000_000_000 + n);

    [Fact]
    public void One_buckets_transaction_is_written_once_with_its_sku_and_bucket_and_read_back_record_for_record()
    {
        DeductionRecord[] records = [Record(1), Record(2), Record(3)];
        var message = PipelineJson.ToTransactionMessage("tx-1", records, Subject);

        Assert.Equal("tx-1", message.MessageId);
        Assert.Equal(Subject, message.Subject);
        var json = Encoding.UTF8.GetString(message.Payload.Span);
        Assert.Equal(1, CountOf(json, "sku-1"));
        Assert.DoesNotContain("orderId", json, StringComparison.Ordinal);
        Assert.Equal(records, PipelineJson.ReadDeductions(message.Payload));
    }

    [Fact]
    public void The_envelope_takes_well_under_half_the_bytes_of_named_records()
    {
        var records = Enumerable.Range(0, 100).Select(n => Record(n)).ToArray();
        var envelope = PipelineJson.ToTransactionMessage("tx", records, Subject).Payload.Length;
        var named = PipelineJson.Serialize(records).Length;
        Assert.True(envelope * 2 < named, $"{envelope} bytes for the envelope, {named} for named records");
    }

    [Fact]
    public void Records_of_several_buckets_are_written_as_named_records_and_read_back()
    {
        DeductionRecord[] records = [Record(1, bucket: 0), Record(2, bucket: 1), Record(3, sku: "sku-2", bucket: 1)];
        var message = PipelineJson.ToTransactionMessage("tx-2", records, Subject);

        Assert.StartsWith("[", Encoding.UTF8.GetString(message.Payload.Span), StringComparison.Ordinal);
        Assert.Equal(records, PipelineJson.ReadDeductions(message.Payload));
    }

    [Fact]
    public void Messages_of_earlier_versions_are_still_read_an_array_of_named_records_and_a_single_record()
    {
        DeductionRecord[] records = [Record(1), Record(2)];
        Assert.Equal(records, PipelineJson.ReadDeductions(PipelineJson.Serialize(records)));
        Assert.Equal([records[0]], PipelineJson.ReadDeductions(PipelineJson.ToMessage(records[0], Subject).Payload));
    }

    [Theory]
    [InlineData("""{"sku":"s","bucket":0,"orders":[]}""")]
    [InlineData("""{"bucket":0,"orders":[["o","r","u",1,5]]}""")]
    [InlineData("""{"sku":"s","bucket":0,"orders":[null]}""")]
    [InlineData("""{"sku":"s","bucket":0,"orders":[["o","r","u",1]]}""")]
    [InlineData("""{"sku":"s","bucket":0,"orders":[["o","r","u",1,5,6]]}""")]
    [InlineData("""{"sku":"s","bucket":0,"orders":[["o","r","u","1",5]]}""")]
    [InlineData("""{"sku":"s","bucket":0,"orders":[{"orderId":"o"}]}""")]
    [InlineData("""{"sku":"s","bucket":0,"orders":[["o","r","u",1,5]""")]
    [InlineData("[]")]
    [InlineData("  ")]
    public void A_malformed_deductions_payload_is_refused(string json) =>
        Assert.ThrowsAny<JsonException>(() => PipelineJson.ReadDeductions(Encoding.UTF8.GetBytes(json)));

    [Fact]
    public void A_half_payload_carries_each_order_as_an_array_and_reads_back()
    {
        var payload = new HalfPayload("sku-1", 3, [new PendingOrder("o1", "r1", "u1", 2), new PendingOrder("o2", "r2", "u2", 1)], HalfPayload.HomePurchase);
        var bytes = PipelineJson.Serialize(payload);

        Assert.Contains("""["o1","r1","u1",2]""", Encoding.UTF8.GetString(bytes), StringComparison.Ordinal);
        var read = PipelineJson.Deserialize<HalfPayload>(bytes);
        Assert.Equal((payload.Sku, payload.Bucket, payload.Kind), (read.Sku, read.Bucket, read.Kind));
        Assert.Equal(payload.Orders, read.Orders);
    }

    [Fact]
    public void A_half_payload_of_an_earlier_version_with_named_orders_is_still_read()
    {
        var json = """{"sku":"sku-1","bucket":0,"orders":[{"orderId":"o1","requestId":"r1","userId":"u1","quantity":2}],"kind":"deduct"}""";
        var read = PipelineJson.Deserialize<HalfPayload>(Encoding.UTF8.GetBytes(json));
        Assert.Equal([new PendingOrder("o1", "r1", "u1", 2)], read.Orders);
        Assert.Equal(HalfPayload.Deduction, read.Kind);
    }

    private static int CountOf(string text, string part)
    {
        var count = 0;
        for (var at = text.IndexOf(part, StringComparison.Ordinal); at >= 0; at = text.IndexOf(part, at + part.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }
}
