using MySqlConnector;
using Orleans.Runtime;

namespace OrleansFlashSale.Tests;

[Collection(ClusterCollection.Name)]
public sealed class FoundationTests(ClusterFixture fixture)
{
    [Fact]
    public async Task Two_silos_form_one_cluster_through_Redis_membership()
    {
        var hosts = await fixture.Client.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true);
        Assert.Equal(2, hosts.Count);

        // The membership table is a Redis hash named after this test cluster's ids ({ServiceId}/members/{ClusterId}),
        // with a row per silo (S<address>:<port>:<generation>). Read by name: a SCAN of a local stack that benches
        // have filled with millions of keys outlasts the command timeout.
        var rows = (await fixture.Redis.GetDatabase().HashKeysAsync($"{fixture.ClusterId}/members/{fixture.ClusterId}"))
            .Select(f => f.ToString()).ToHashSet();
        Assert.All(hosts.Keys, silo => Assert.Contains($"S{silo.Endpoint.Address}:{silo.Endpoint.Port}:{silo.Generation}", rows));
    }

    [Fact]
    public async Task Sale_definition_is_written_to_MySQL_and_read_back_after_deactivation()
    {
        var sale = await fixture.CreateSaleAsync("found", stock: 10, buckets: 2, perUserLimit: 1);
        var product = fixture.Client.Product(sale.Sku);

        Assert.Equal(1, await CountStoredRowsAsync(sale.Sku));

        await fixture.Cluster.DeactivateAsync(product);
        await fixture.Cluster.WaitForDeactivationAsync(product);

        // A fresh activation has only what the ADO.NET provider reads back from MariaDB.
        Assert.Equal(sale, await product.GetDefinitionAsync());

        var rebucketed = await product.RebucketAsync(4);
        Assert.Equal(RebucketOutcome.Done, rebucketed.Outcome);
        await fixture.Cluster.DeactivateAsync(product);
        await fixture.Cluster.WaitForDeactivationAsync(product);
        var status = await product.GetStatusAsync(refresh: true);
        Assert.Equal(4, status!.Buckets.Count);
        Assert.Equal(2, status.LayoutVersion);
        Assert.Equal(10, status.Remaining);
    }

    private static async Task<long> CountStoredRowsAsync(string sku)
    {
        await using var connection = new MySqlConnection(TestStack.MySql);
        await connection.OpenAsync();
        await using var command = new MySqlCommand(
            "SELECT COUNT(*) FROM OrleansStorage WHERE GrainIdExtensionString = @sku AND PayloadBinary IS NOT NULL", connection);
        command.Parameters.AddWithValue("@sku", sku);
        return Convert.ToInt64(await command.ExecuteScalarAsync());
    }
}
