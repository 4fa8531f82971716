using OrleansFlashSale.Grains;
using OrleansFlashSale.Pipeline;

namespace OrleansFlashSale.UnitTests;

/// <summary>What a bucket's half message announces, with and without transactions that span batches.</summary>
public sealed class HalfPayloadTests
{
    private static readonly PurchaseCall Call = new(2, new SaleDefinition("sku-1", 10, 1, 2, null, null, 900, 1, "redis"), (_, _, _) => { });

    private static readonly List<BucketWork> Purchases =
    [
        BucketWork.ForPurchase(new PurchaseRequest("sku-1", "u1", "r1", 2), "o1", Call, 0),
        BucketWork.ForPurchase(new PurchaseRequest("sku-1", "u2", "r2", 1), "o2", Call, 1),
    ];

    [Fact]
    public void A_transaction_that_may_span_batches_names_no_orders()
    {
        var payload = BucketEpoch.HalfPayloadFor("sku-1", 3, spansBatches: true, BucketWorkKind.Purchase, Purchases);

        Assert.Equal(("sku-1", 3, HalfPayload.Epoch), (payload.Sku, payload.Bucket, payload.Kind));
        Assert.Empty(payload.Orders);
    }

    /// <summary>
    /// With TransactionEpochMilliseconds 0 the half message is the one-batch form that versions before epochs store
    /// and whose check-back they can answer: the orders with the script that proves them.
    /// </summary>
    [Fact]
    public void A_one_batch_transaction_lists_its_orders_in_the_form_older_versions_answer()
    {
        var purchase = BucketEpoch.HalfPayloadFor("sku-1", 3, spansBatches: false, BucketWorkKind.Purchase, Purchases);
        Assert.Equal(HalfPayload.HomePurchase, purchase.Kind);
        Assert.Equal([new PendingOrder("o1", "r1", "u1", 2), new PendingOrder("o2", "r2", "u2", 1)], purchase.Orders);

        var deduct = BucketEpoch.HalfPayloadFor("sku-1", 0, spansBatches: false, BucketWorkKind.Deduct,
            [BucketWork.ForDeduct(new DeductRequest("o3", "u3", "r3", 1))]);
        Assert.Equal(HalfPayload.Deduction, deduct.Kind);
        Assert.Equal([new PendingOrder("o3", "r3", "u3", 1)], deduct.Orders);

        // Read back as the check-back reads it.
        var read = PipelineJson.Deserialize<HalfPayload>(PipelineJson.Serialize(purchase));
        Assert.Equal(purchase.Orders, read.Orders);
        Assert.Equal(HalfPayload.HomePurchase, read.Kind);
    }
}
