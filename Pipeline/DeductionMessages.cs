using System.Text.Json;
using OrleansFlashSale.Messaging;

namespace OrleansFlashSale.Pipeline;

/// <summary>What a bucket stores with its half message: enough for the check-back to ask Redis what happened.</summary>
/// <param name="Kind">
/// Which script the transaction runs: <see cref="HomePurchase"/> (purchase.lua, proof = the request record) or
/// <see cref="Deduction"/> (deduct.lua, proof = the order marker). Both are fenced (fence.lua). Null for half
/// messages stored before fencing existed: those are answered from the order markers alone.
/// </param>
public sealed record HalfPayload(string Sku, int Bucket, IReadOnlyList<PendingOrder> Orders, string? Kind = null)
{
    public const string HomePurchase = "purchase";
    public const string Deduction = "deduct";
}

public sealed record PendingOrder(string OrderId, string RequestId, string UserId, int Quantity);

public static class PipelineJson
{
    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web);

    public static byte[] Serialize<T>(T value) => JsonSerializer.SerializeToUtf8Bytes(value, Options);

    public static T Deserialize<T>(ReadOnlyMemory<byte> bytes) =>
        JsonSerializer.Deserialize<T>(bytes.Span, Options) ?? throw new JsonException($"empty {typeof(T).Name} payload");

    /// <summary>
    /// One order as its own message, de-duplicated by order id: what a repair re-publishes, and what a dead letter
    /// holds. The writer reads it as well as <see cref="ToTransactionMessage"/>'s.
    /// </summary>
    public static OutgoingMessage ToMessage(DeductionRecord record, string subject) =>
        new(record.OrderId, subject, Serialize(record));

    /// <summary>
    /// A whole transaction's deductions as one message (a JSON array), de-duplicated by the transaction id. One
    /// message per transaction, as RocketMQ has it: a message per order would cost a JetStream publish, a delivery and
    /// an ack per order, a large share of the silo's CPU (see docs/performance-history.md).
    /// </summary>
    public static OutgoingMessage ToTransactionMessage(string transactionId, IReadOnlyList<DeductionRecord> records, string subject) =>
        new(transactionId, subject, Serialize(records));

    /// <summary>
    /// The records of a deductions-stream message: a JSON array (a transaction) or a single object (one order, as
    /// repairs publish).
    /// </summary>
    /// <exception cref="JsonException">The payload is neither.</exception>
    public static DeductionRecord[] ReadDeductions(ReadOnlyMemory<byte> bytes)
    {
        var span = bytes.Span.TrimStart(" \t\r\n"u8);
        if (span.IsEmpty)
        {
            throw new JsonException("empty deductions payload");
        }

        if (span[0] == (byte)'[')
        {
            var records = JsonSerializer.Deserialize<DeductionRecord[]>(span, Options) ?? throw new JsonException("empty deductions payload");
            return records.Length > 0 && Array.TrueForAll(records, r => r is not null)
                ? records
                : throw new JsonException("a deductions message must hold at least one record and no null");
        }

        return [Deserialize<DeductionRecord>(bytes)];
    }
}
