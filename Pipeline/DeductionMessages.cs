using System.Text.Json;
using System.Text.Json.Serialization;
using OrleansFlashSale.Messaging;

namespace OrleansFlashSale.Pipeline;

/// <summary>What a bucket stores with its half message: enough for the check-back to ask Redis what happened.</summary>
/// <param name="Orders">The orders of a one-batch transaction; empty for an <see cref="Epoch"/>.</param>
/// <param name="Kind">
/// <see cref="Epoch"/>: a transaction of one or more batches of the bucket, announced before its first script; its
/// orders are the deduction log's entries that carry its id, and seal.lua makes the check-back's answer final. The
/// others are half messages of earlier versions, one per batch, which list their orders:
/// <see cref="HomePurchase"/> (purchase.lua, proof = the request record), <see cref="Deduction"/> (deduct.lua,
/// proof = the order marker), both fenced by fence.lua, and null (stored before fencing existed: answered from the
/// order markers alone).
/// </param>
public sealed record HalfPayload(string Sku, int Bucket, IReadOnlyList<PendingOrder> Orders, string? Kind = null)
{
    public const string Epoch = "epoch";
    public const string HomePurchase = "purchase";
    public const string Deduction = "deduct";
}

/// <summary>
/// One purchase a half message announces. On the wire a JSON array <c>[order, request, user, quantity]</c>
/// (<see cref="PendingOrderJsonConverter"/>): a half message carries one per purchase of its batch, and JetStream's
/// CPU grows with the bytes it stores. Objects with named properties, as older versions wrote them, are read too.
/// </summary>
[JsonConverter(typeof(PendingOrderJsonConverter))]
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
    /// A whole transaction's deductions as one message, de-duplicated by the transaction id. One message per
    /// transaction, as RocketMQ has it: a message per order would cost a JetStream publish, a delivery and an ack per
    /// order, a large share of the silo's CPU (see docs/performance-history.md). A transaction's records share their
    /// SKU and bucket (one bucket's batch), so they are written once, and each order as an array
    /// (<see cref="TransactionEnvelope"/>): less than half the bytes of named records. Records of several SKUs or buckets
    /// are written as an array of named records, which the writer reads as well.
    /// </summary>
    public static OutgoingMessage ToTransactionMessage(string transactionId, IReadOnlyList<DeductionRecord> records, string subject)
    {
        ArgumentNullException.ThrowIfNull(records);
        var first = records.Count > 0 ? records[0] : null;
        var shared = first is not null && records.All(r => r is not null && r.Sku == first.Sku && r.Bucket == first.Bucket);
        return new(transactionId, subject, shared
            ? Serialize(new TransactionEnvelope(first!.Sku, first.Bucket,
                records.Select(r => new TransactionOrder(r.OrderId, r.RequestId, r.UserId, r.Quantity, r.CommittedAtMs)).ToArray()))
            : Serialize(records));
    }

    /// <summary>
    /// The records of a deductions-stream message: a transaction (<see cref="ToTransactionMessage"/>'s envelope, or a
    /// JSON array of records) or a single record (one order, as repairs publish).
    /// </summary>
    /// <exception cref="JsonException">The payload is none of these.</exception>
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

        if (!HasTopLevelProperty(span, TransactionEnvelope.OrdersProperty))
        {
            return [Deserialize<DeductionRecord>(bytes)];
        }

        var envelope = JsonSerializer.Deserialize<TransactionEnvelope>(span, Options) ?? throw new JsonException("empty deductions payload");
        if (envelope.Sku is null || envelope.Orders is not { Length: > 0 } orders || Array.Exists(orders, o => o is null))
        {
            throw new JsonException("a deductions message must name its SKU and hold at least one order and no null");
        }

        return Array.ConvertAll(orders, o => new DeductionRecord(o.OrderId, o.RequestId, envelope.Sku, o.UserId, o.Quantity, envelope.Bucket, o.CommittedAtMs));
    }

    /// <summary>Whether the JSON object in <paramref name="json"/> has a property named <paramref name="name"/> at its top level.</summary>
    private static bool HasTopLevelProperty(ReadOnlySpan<byte> json, string name)
    {
        var reader = new Utf8JsonReader(json);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            return false;
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals(name))
            {
                return true;
            }

            // The value, nested objects and arrays included; a truncated payload fails in the real read after this.
            if (!reader.Read() || !reader.TrySkip())
            {
                return false;
            }
        }

        return false;
    }
}

/// <summary>A transaction's deductions on the wire: what they share once, then one array per order.</summary>
internal sealed record TransactionEnvelope(string Sku, int Bucket, TransactionOrder[] Orders)
{
    public const string OrdersProperty = "orders";
}

/// <summary>One order of a <see cref="TransactionEnvelope"/>: <c>[order, request, user, quantity, committedAtMs]</c>.</summary>
[JsonConverter(typeof(TransactionOrderJsonConverter))]
internal sealed record TransactionOrder(string OrderId, string RequestId, string UserId, int Quantity, long CommittedAtMs);

internal sealed class TransactionOrderJsonConverter : JsonConverter<TransactionOrder>
{
    public override TransactionOrder Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var (orderId, requestId, userId, quantity) = WireArrays.ReadOrder(ref reader, "an order");
        var order = new TransactionOrder(orderId, requestId, userId, quantity, WireArrays.Int64(ref reader));
        WireArrays.End(ref reader, "an order");
        return order;
    }

    public override void Write(Utf8JsonWriter writer, TransactionOrder value, JsonSerializerOptions options)
    {
        WireArrays.WriteOrder(writer, value.OrderId, value.RequestId, value.UserId, value.Quantity);
        writer.WriteNumberValue(value.CommittedAtMs);
        writer.WriteEndArray();
    }
}

/// <summary><see cref="PendingOrder"/> as <c>[order, request, user, quantity]</c>; an object with named properties is read too.</summary>
public sealed class PendingOrderJsonConverter : JsonConverter<PendingOrder>
{
    public override PendingOrder? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.StartObject)
        {
            var named = JsonSerializer.Deserialize<NamedPendingOrder>(ref reader, options) ?? throw new JsonException("a pending order is null");
            return new PendingOrder(named.OrderId, named.RequestId, named.UserId, named.Quantity);
        }

        var (orderId, requestId, userId, quantity) = WireArrays.ReadOrder(ref reader, "a pending order");
        WireArrays.End(ref reader, "a pending order");
        return new PendingOrder(orderId, requestId, userId, quantity);
    }

    public override void Write(Utf8JsonWriter writer, PendingOrder value, JsonSerializerOptions options)
    {
        WireArrays.WriteOrder(writer, value.OrderId, value.RequestId, value.UserId, value.Quantity);
        writer.WriteEndArray();
    }

    // The named form older versions wrote; without the converter attribute, so reading it does not recurse.
    private sealed record NamedPendingOrder(string OrderId, string RequestId, string UserId, int Quantity);
}

/// <summary>The fixed positions of an order's array on the wire; reading fails with what was expected.</summary>
internal static class WireArrays
{
    /// <summary>Reads <c>[order, request, user, quantity</c> and leaves the reader inside the array.</summary>
    public static (string OrderId, string RequestId, string UserId, int Quantity) ReadOrder(ref Utf8JsonReader reader, string what)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new JsonException($"{what} must be a JSON array");
        }

        return (String(ref reader), String(ref reader), String(ref reader), Int32(ref reader));
    }

    /// <summary>Writes <c>[order, request, user, quantity</c> and leaves the array open.</summary>
    public static void WriteOrder(Utf8JsonWriter writer, string orderId, string requestId, string userId, int quantity)
    {
        writer.WriteStartArray();
        writer.WriteStringValue(orderId);
        writer.WriteStringValue(requestId);
        writer.WriteStringValue(userId);
        writer.WriteNumberValue(quantity);
    }

    public static string String(ref Utf8JsonReader reader) =>
        reader.Read() && reader.TokenType == JsonTokenType.String && reader.GetString() is { } value
            ? value
            : throw new JsonException("expected a string");

    public static int Int32(ref Utf8JsonReader reader) =>
        reader.Read() && reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var value)
            ? value
            : throw new JsonException("expected a 32-bit integer");

    public static long Int64(ref Utf8JsonReader reader) =>
        reader.Read() && reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value)
            ? value
            : throw new JsonException("expected a 64-bit integer");

    public static void End(ref Utf8JsonReader reader, string what)
    {
        if (!reader.Read() || reader.TokenType != JsonTokenType.EndArray)
        {
            throw new JsonException($"{what} has more values than expected");
        }
    }
}
