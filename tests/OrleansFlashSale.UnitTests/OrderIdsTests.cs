using Microsoft.Extensions.Time.Testing;
using OrleansFlashSale.Grains;
using OrleansFlashSale.Redis;

namespace OrleansFlashSale.UnitTests;

/// <summary>Order ids made in bulk are the version 7 UUIDs Guid.CreateVersion7 makes, and as unpredictable.</summary>
public sealed class OrderIdsTests
{
    private static readonly DateTimeOffset At = new(2026, 12, 7, 18, 30, 0, 123, TimeSpan.Zero);

    [Fact]
    public void An_id_is_a_version_7_uuid_of_its_millisecond_in_N_format()
    {
        var id = new OrderIds(new FakeTimeProvider(At)).Next();

        Assert.Matches("^[0-9a-f]{32}$", id);
        var guid = Guid.ParseExact(id, "N");
        Assert.Equal(7, guid.Version);
        Assert.Equal(0b10, guid.Variant >> 2);
        Assert.Equal(Guid.CreateVersion7(At).ToString("N")[..12], id[..12]);
        Assert.Equal(RedisKeys.OrderIndex(Guid.CreateVersion7(At).ToString("N")), RedisKeys.OrderIndex(id));
    }

    [Fact]
    public void Ids_across_many_fills_of_the_random_buffer_are_all_different()
    {
        var ids = new OrderIds(new FakeTimeProvider(At));

        var made = Enumerable.Range(0, OrderIds.IdsPerFill * 40).Select(_ => ids.Next()).ToList();

        Assert.Equal(made.Count, made.Distinct(StringComparer.Ordinal).Count());
        // 74 random bits per id, all of the same millisecond: the bits after the timestamp are what differ.
        Assert.All(made, id => Assert.Equal(made[0][..12], id[..12]));
    }

    [Fact]
    public void The_clock_moves_the_timestamp_not_the_randomness()
    {
        var clock = new FakeTimeProvider(At);
        var ids = new OrderIds(clock);

        var first = ids.Next();
        clock.Advance(TimeSpan.FromSeconds(1));
        var second = ids.Next();

        Assert.Equal(1000, Convert.ToInt64(second[..12], 16) - Convert.ToInt64(first[..12], 16));
        Assert.NotEqual(first[13..], second[13..]);
    }
}
