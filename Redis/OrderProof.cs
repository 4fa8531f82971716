namespace OrleansFlashSale.Redis;

/// <summary>
/// What Redis keeps to prove an order was deducted, as the scripts write it: deduct.lua sets the order marker to
/// <see cref="Marker"/>; purchase.lua stores the request record, which starts with the order id and '|'. The
/// check-back (fence.lua) and verify read the same proofs.
/// </summary>
public static class OrderProof
{
    /// <summary>The order marker's value once deduct.lua deducted the order (void.lua writes 'F' instead).</summary>
    public const string Marker = "1";

    /// <summary>How a request record naming <paramref name="orderId"/> begins.</summary>
    public static string RecordPrefix(string orderId) => orderId + "|";
}
