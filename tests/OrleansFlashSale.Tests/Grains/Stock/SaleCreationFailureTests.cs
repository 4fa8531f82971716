namespace OrleansFlashSale.Tests;

/// <summary>
/// A sale whose definition MariaDB refused to store must not exist: not for the product grain's activation that
/// tried, not for buyers. Creating it again once MariaDB takes writes sells the stock exactly once.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class SaleCreationFailureTests(ClusterFixture fixture)
{
    [Fact]
    public async Task A_sale_whose_definition_MariaDB_refused_is_not_served_and_creating_it_again_sells_the_stock_once()
    {
        var sku = ClusterFixture.NewSku("unstored");
        var sale = new SaleDefinition(sku, 10, 2, 1, null, null, SaleRules.DefaultPaymentTimeoutSeconds, 2, SaleModes.Redis);
        var product = fixture.Client.Product(sku);

        // MariaDB refuses exactly this grain's state write (a trigger on the grain storage table), so the Redis buckets
        // and the inventory row are set up and only the definition's write fails, as when MariaDB stops at that moment.
        var trigger = "refuse_" + sku.Replace('-', '_');
        await TestDb.ScalarAsync($"""
            CREATE TRIGGER {trigger} BEFORE UPDATE ON OrleansStorage FOR EACH ROW
            BEGIN
              IF NEW.GrainIdExtensionString = '{sku}' AND NEW.PayloadBinary IS NOT NULL THEN
                SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'grain storage refused by the test';
              END IF;
            END
            """);
        try
        {
            // The driver's error reaches the caller (the gateway answers 503) instead of a serialisation error.
            var failure = await Assert.ThrowsAsync<DependencyUnavailableException>(() => product.CreateAsync(sale));
            Assert.Equal("mysql", failure.Dependency);
            Assert.Contains("grain storage refused by the test", failure.Message, StringComparison.Ordinal);
            Assert.Null(await product.GetDefinitionAsync());
            Assert.Equal(PurchaseOutcome.UnknownSale, (await fixture.BuyAsync(sale, "early", "r1")).Outcome);
        }
        finally
        {
            await TestDb.ScalarAsync($"DROP TRIGGER IF EXISTS {trigger}");
        }

        Assert.Equal(CreateSaleOutcome.Created, (await product.CreateAsync(sale)).Outcome);
        var history = new SaleHistory();
        await Task.WhenAll(Enumerable.Range(0, 30).Select(async i => history.Record($"u{i}", "r1", await fixture.BuyAsync(sale, $"u{i}", "r1"))));
        Assert.Equal(10, history.AcknowledgedUnits);
        Assert.Equal(20, history.Count(PurchaseOutcome.SoldOut));
        Assert.Equal(new long[2], await fixture.RedisStockAsync(sku, 2));
    }
}
