using CsCheck;

namespace OrleansFlashSale.UnitTests;

public sealed class SaleRulesTests
{
    [Fact]
    public void Splitting_stock_over_buckets_never_loses_or_creates_a_unit() =>
        Gen.Select(Gen.Long[1, SaleRules.MaxStock], Gen.Int[1, SaleRules.MaxBuckets]).Sample((stock, buckets) =>
        {
            var parts = SaleRules.Split(stock, buckets);
            return parts.Length == buckets && parts.Sum() == stock && parts.Max() - parts.Min() <= 1
                && parts.SequenceEqual(parts.OrderDescending());
        });

    [Fact]
    public void Stable_hash_is_the_same_in_every_process() =>
        // FNV-1a test vectors: routing must agree between the gateway and every silo, across restarts.
        Assert.Equal([0x811c9dc5u, 0xe40c292cu, 0xbf9cf968u], new[] { "", "a", "foobar" }.Select(StableHash.Of).ToArray());

    [Theory]
    [InlineData("A.b-c_9", true)]
    [InlineData("", false)]
    [InlineData("has space", false)]
    [InlineData("ünïcode", false)]
    [InlineData("{tag}", false)]
    [InlineData("x;DROP TABLE orders", false)]
    public void Sku_pattern(string sku, bool valid) => Assert.Equal(valid, SaleRules.IsValidSku(sku));

    [Fact]
    public void Ids_with_control_characters_or_broken_unicode_are_refused() =>
        Gen.String[Gen.Char, 1, 64].Sample(id =>
        {
            var error = SaleRules.ValidateId(id, "userId");
            var bad = id.Any(char.IsControl) || HasLoneSurrogate(id);
            return bad == (error is not null);
        });

    private static bool HasLoneSurrogate(string s)
    {
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(s[i]))
            {
                return true;
            }
        }

        return false;
    }
}
