using OrleansFlashSale.Redis;

namespace OrleansFlashSale.UnitTests;

public sealed class RedisKeysTests
{
    [Fact]
    public void The_order_index_hash_is_named_by_the_second_of_the_order_ids_own_clock()
    {
        var at = DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_123_456);
        var id = Guid.CreateVersion7(at).ToString("N");
        Assert.Equal("fs:orders:1796000123", RedisKeys.OrderIndex(id)?.ToString());
        // Two ids of the same second share the hash; the next second is another one.
        Assert.Equal(RedisKeys.OrderIndex(id), RedisKeys.OrderIndex(Guid.CreateVersion7(at.AddMilliseconds(500)).ToString("N")));
        Assert.NotEqual(RedisKeys.OrderIndex(id), RedisKeys.OrderIndex(Guid.CreateVersion7(at.AddSeconds(1)).ToString("N")));
    }

    [Theory]
    [InlineData("not-an-order")]
    [InlineData("0123456789abcdef0123456789abcdef")]
    [InlineData("zzzzzzzzzzzz7def0123456789abcdef")]
    public void An_id_that_is_not_a_version_7_uuid_has_no_index_hash(string orderId) => Assert.Null(RedisKeys.OrderIndex(orderId));

    [Fact]
    public void A_version_4_uuid_has_no_index_hash() => Assert.Null(RedisKeys.OrderIndex(Guid.NewGuid().ToString("N")));

    [Theory]
    [InlineData("a:b", "c", "3:a:b:c")]
    [InlineData("a", "b:c", "1:a:b:c")]
    [InlineData("ü", "r", "2:ü:r")]
    public void A_request_field_is_prefixed_by_the_user_ids_length_in_UTF8_bytes(string user, string request, string field) =>
        Assert.Equal(field, RedisKeys.RequestField(user, request));
}
