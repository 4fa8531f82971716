using System.Collections.Concurrent;

namespace OrleansFlashSale.Client.Api;

/// <summary>
/// Sale definitions cached per gateway: they never change once created, and every purchase needs the quota shard
/// count to route. Unknown SKUs are not cached, so a sale created a moment later is found.
/// </summary>
public sealed class SaleDirectory(IGrainFactory grains)
{
    private readonly ConcurrentDictionary<string, SaleDefinition> _sales = new(StringComparer.Ordinal);

    public async ValueTask<SaleDefinition?> GetAsync(string sku)
    {
        if (_sales.TryGetValue(sku, out var sale))
        {
            return sale;
        }

        sale = await grains.Product(sku).GetDefinitionAsync();
        if (sale is not null)
        {
            _sales.TryAdd(sku, sale);
        }

        return sale;
    }
}
