using OrleansFlashSale.Redis;
using StackExchange.Redis;

namespace OrleansFlashSale.Tests;

/// <summary>The Lua scripts on the real Redis, without grains: each check before any write, integers only.</summary>
[Collection(ClusterCollection.Name)]
public sealed class ScriptTests(ClusterFixture fixture)
{
    private readonly RedisScripts _scripts = new();
    private IDatabase Db => fixture.Redis.GetDatabase();

    /// <summary>Runs deduct.lua; a log entry id (a deduction) is reported as 1, other answers as they come.</summary>
    private async Task<long[]> DeductAsync(string sku, int bucket, params (string Order, string User, string Qty)[] items)
    {
        var tx = Guid.NewGuid().ToString("N");
        var keys = new List<RedisKey> { RedisKeys.Stock(sku, bucket), RedisKeys.Log(sku, bucket), RedisKeys.Fence(sku, bucket, tx) };
        var args = new List<RedisValue> { bucket, 3600, tx };
        foreach (var (order, user, qty) in items)
        {
            keys.Add(RedisKeys.OrderMarker(sku, bucket, order));
            args.AddRange([order, user, "req-" + order, qty]);
        }

        var results = (RedisResult[])(await RedisScripts.EvaluateAsync(Db, _scripts.Deduct, keys.ToArray(), args.ToArray()))!;
        return results.Select((r, i) => i > 0 && r.ToString().Contains('-') && !r.ToString().StartsWith('-') ? 1L : (long)r).ToArray();
    }

    [Fact]
    public async Task Missing_stock_key_is_an_error_answer_and_writes_nothing()
    {
        var sku = ClusterFixture.NewSku("lua-missing");
        var result = await DeductAsync(sku, 0, ("o1", "u1", "1"));
        Assert.Equal(new long[] { -1 }, result);
        Assert.False(await Db.KeyExistsAsync(RedisKeys.Log(sku, 0)));
        Assert.False(await Db.KeyExistsAsync(RedisKeys.OrderMarker(sku, 0, "o1")));
        Assert.False(await Db.KeyExistsAsync(RedisKeys.Stock(sku, 0)));
    }

    [Fact]
    public async Task Stock_never_goes_below_zero_and_each_purchase_is_all_or_nothing()
    {
        var sku = ClusterFixture.NewSku("lua-floor");
        await Db.StringSetAsync(RedisKeys.Stock(sku, 0), 3);
        var result = await DeductAsync(sku, 0, ("o1", "u1", "2"), ("o2", "u2", "2"), ("o3", "u3", "1"), ("o4", "u4", "1"));
        // 3 units: o1 takes 2, o2 (2) does not fit, o3 takes the last one, o4 finds none.
        Assert.Equal(new long[] { 0, 1, 0, 1, 0 }, result);
        Assert.Equal(0, (long)await Db.StringGetAsync(RedisKeys.Stock(sku, 0)));
        Assert.Equal(2, await Db.StreamLengthAsync(RedisKeys.Log(sku, 0)));
    }

    [Fact]
    public async Task A_repeated_order_id_is_not_deducted_twice()
    {
        var sku = ClusterFixture.NewSku("lua-dup");
        await Db.StringSetAsync(RedisKeys.Stock(sku, 0), 10);
        Assert.Equal(new long[] { 9L, 1 }, await DeductAsync(sku, 0, ("o1", "u1", "1")));
        Assert.Equal(new long[] { 9L, 2, 2 }, await DeductAsync(sku, 0, ("o1", "u1", "1"), ("o1", "u1", "1")));
        Assert.Equal(1, await Db.StreamLengthAsync(RedisKeys.Log(sku, 0)));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("0.5")]
    [InlineData("abc")]
    [InlineData("1e3")]
    [InlineData("99999999999999999999")]
    public async Task Bad_quantities_are_refused_without_any_write(string quantity)
    {
        var sku = ClusterFixture.NewSku("lua-qty");
        await Db.StringSetAsync(RedisKeys.Stock(sku, 0), 5000);
        var result = await DeductAsync(sku, 0, ("o1", "u1", quantity));
        Assert.Equal(-2, result[1]);
        Assert.Equal(5000, (long)await Db.StringGetAsync(RedisKeys.Stock(sku, 0)));
        Assert.False(await Db.KeyExistsAsync(RedisKeys.Log(sku, 0)));
    }

    [Fact]
    public async Task The_log_entry_records_order_request_user_quantity_bucket_and_time()
    {
        var sku = ClusterFixture.NewSku("lua-log");
        await Db.StringSetAsync(RedisKeys.Stock(sku, 3), 5);
        await DeductAsync(sku, 3, ("order-7", "user:with:colons", "2"));
        var entry = (await Db.StreamRangeAsync(RedisKeys.Log(sku, 3))).Single();
        var fields = entry.Values.ToDictionary(v => (string)v.Name!, v => (string)v.Value!);
        Assert.Equal("order-7", fields["o"]);
        Assert.Equal("user:with:colons", fields["u"]);
        Assert.Equal("req-order-7", fields["r"]);
        Assert.Equal("2", fields["q"]);
        Assert.Equal("3", fields["b"]);
        Assert.True(long.Parse(fields["t"]) > 1_600_000_000_000);
    }

    [Fact]
    public async Task Scripts_are_reloaded_after_the_server_forgets_them()
    {
        var sku = ClusterFixture.NewSku("lua-noscript");
        await Db.StringSetAsync(RedisKeys.Stock(sku, 0), 2);
        await fixture.Redis.GetServers().Single().ScriptFlushAsync();
        Assert.Equal(new long[] { 1L, 1 }, await DeductAsync(sku, 0, ("o1", "u1", "1")));
        await fixture.Redis.GetServers().Single().ScriptFlushAsync();
        Assert.Equal(new long[] { 0L, 1 }, await DeductAsync(sku, 0, ("o2", "u1", "1")));
    }

    [Fact]
    public async Task Reserve_enforces_the_limit_within_one_call_and_answers_replays_from_the_record()
    {
        var sku = ClusterFixture.NewSku("lua-quota");
        RedisKey[] keys = [RedisKeys.Units(sku, 0), RedisKeys.Requests(sku, 0)];
        RedisValue[] Args(string lookup, params (int Qty, string Order, string Request)[] items) =>
            new RedisValue[] { 3, 3600, lookup }.Concat(items.SelectMany(i => new RedisValue[] { i.Qty, i.Order, 1000, "u", i.Request })).ToArray();

        // The same request twice in one call: the second answers the record the first just wrote.
        var first = (RedisResult[])(await RedisScripts.EvaluateAsync(Db, _scripts.Reserve, keys,
            Args("0", (2, "o-a", "a"), (1, "o-b", "b"), (1, "o-c", "c"), (1, "o-a2", "a"))))!;
        Assert.Equal(["1", "1", "0", "o-a|2|R|-1|1000"], first.Select(r => r.ToString()).ToArray());
        Assert.Equal(3, (long)await Db.HashGetAsync(RedisKeys.Units(sku, 0), "u"));
        Assert.Equal(new RedisValue[] { "u" }, await Db.HashKeysAsync(RedisKeys.Units(sku, 0)));
        Assert.Equal(2, await Db.HashLengthAsync(RedisKeys.Requests(sku, 0)));

        var replay = (RedisResult[])(await RedisScripts.EvaluateAsync(Db, _scripts.Reserve, keys,
            Args("1", (2, "o-new", "a"), (1, "o-z", "zzz"))))!;
        Assert.Equal("o-a|2|R|-1|1000", (string?)replay[0]);
        Assert.Equal(3, (long)replay[1]);
        Assert.Equal(3, (long)await Db.HashGetAsync(RedisKeys.Units(sku, 0), "u"));
    }

    [Fact]
    public async Task Finalize_marks_a_record_done_or_releases_its_units_and_drops_a_user_left_with_none()
    {
        var sku = ClusterFixture.NewSku("lua-finalize");
        RedisKey[] keys = [RedisKeys.Units(sku, 0), RedisKeys.Requests(sku, 0)];
        await RedisScripts.EvaluateAsync(Db, _scripts.Reserve, keys,
            [5, 3600, "0", 1, "o-a", 1000, "u", "a", 2, "o-b", 1000, "u", "b"]);

        // 'D' for a; 'X' for b; a stale 'X' for a (its record is no longer the reserved one) changes nothing.
        var changed = await RedisScripts.EvaluateAsync(Db, _scripts.Finalize, keys,
        [
            "D", 1, "o-a|1|R|-1|1000", "o-a|1|D|2|1000", "u", "a",
            "X", 2, "o-b|2|R|-1|1000", "", "u", "b",
            "X", 1, "o-a|1|R|-1|1000", "", "u", "a",
        ]);
        Assert.Equal(2, (long)changed);
        Assert.Equal("o-a|1|D|2|1000", (string?)await Db.HashGetAsync(RedisKeys.Requests(sku, 0), RedisKeys.RequestField("u", "a")));
        Assert.False(await Db.HashExistsAsync(RedisKeys.Requests(sku, 0), RedisKeys.RequestField("u", "b")));
        Assert.Equal(1, (long)await Db.HashGetAsync(RedisKeys.Units(sku, 0), "u"));

        // Releasing the last unit the user holds makes them no longer a buyer of the shard.
        await RedisScripts.EvaluateAsync(Db, _scripts.Finalize, keys, ["X", 1, "o-a|1|D|2|1000", "", "u", "a"]);
        Assert.Empty(await Db.HashKeysAsync(RedisKeys.Units(sku, 0)));
    }

    /// <summary>Runs purchase.lua in bucket 0 for user "u" (limit 3): each answer as the script gives it.</summary>
    private async Task<string[]> PurchaseAsync(string sku, string tx, params (string Order, string Request, string Qty)[] items)
    {
        RedisKey[] keys = [RedisKeys.Stock(sku, 0), RedisKeys.Log(sku, 0), RedisKeys.Units(sku, 0), RedisKeys.Requests(sku, 0), RedisKeys.Fence(sku, 0, tx)];
        var args = new List<RedisValue> { 0, 3600, 3, 3600, tx };
        foreach (var (order, request, qty) in items)
        {
            args.AddRange([order, "u", request, qty]);
        }

        var results = (RedisResult[])(await RedisScripts.EvaluateAsync(Db, _scripts.Purchase, keys, args.ToArray()))!;
        return results.Select(r => r.ToString()).ToArray();
    }

    private async Task<string[]> FenceAsync(string sku, string tx, params (string Request, string Order)[] probes)
    {
        var keys = new[] { RedisKeys.Fence(sku, 0, tx) }.Concat(probes.Select(_ => RedisKeys.Requests(sku, 0))).ToArray();
        var args = new RedisValue[] { 3600 }.Concat(probes.SelectMany(p => new RedisValue[] { RedisKeys.RequestField("u", p.Request), p.Order + "|" })).ToArray();
        var results = (RedisResult[])(await RedisScripts.EvaluateAsync(Db, _scripts.Fence, keys, args))!;
        return results.Select(r => r.ToString()).ToArray();
    }

    [Fact]
    public async Task Purchase_checks_record_limit_and_stock_in_one_script_and_answers_a_replay_with_the_stored_record()
    {
        var sku = ClusterFixture.NewSku("lua-purchase");
        await Db.StringSetAsync(RedisKeys.Stock(sku, 0), 4);
        var first = await PurchaseAsync(sku, "t1", ("o-a", "a", "2"), ("o-b", "b", "1"), ("o-c", "c", "1"), ("o-a2", "a", "1"));
        // a takes 2, b takes 1 (3 = the limit), c is over the limit, a's repeat answers a's record.
        Assert.Equal("1", first[0]);
        Assert.Matches(@"^\d+-\d+$", first[1]);
        Assert.Matches(@"^\d+-\d+$", first[2]);
        Assert.Equal("L", first[3]);
        Assert.StartsWith("Eo-a|2|D|0|", first[4]);
        Assert.Equal(3, (long)await Db.HashGetAsync(RedisKeys.Units(sku, 0), "u"));
        Assert.Equal(2, await Db.StreamLengthAsync(RedisKeys.Log(sku, 0)));
        Assert.Equal("C", (string?)await Db.StringGetAsync(RedisKeys.Fence(sku, 0, "t1")));

        // The user holds 3 of 3: a new request is over the limit, and a transaction that deducted nothing is not fenced.
        var second = await PurchaseAsync(sku, "t2", ("o-d", "d", "2"));
        Assert.Equal(new[] { "1", "L" }, second);
        Assert.False(await Db.KeyExistsAsync(RedisKeys.Fence(sku, 0, "t2")), "a transaction that deducted nothing leaves no fence");
    }

    [Fact]
    public async Task The_scripts_name_a_request_record_as_RequestField_does_for_user_ids_with_separators_and_non_ASCII()
    {
        var sku = ClusterFixture.NewSku("lua-field");
        await Db.StringSetAsync(RedisKeys.Stock(sku, 0), 5);
        RedisKey[] keys = [RedisKeys.Stock(sku, 0), RedisKeys.Log(sku, 0), RedisKeys.Units(sku, 0), RedisKeys.Requests(sku, 0), RedisKeys.Fence(sku, 0, "t")];
        // ("b:ü", "c") and ("b", "ü:c") would share "b:ü:c" without the length prefix; Lua counts bytes, not chars.
        await RedisScripts.EvaluateAsync(Db, _scripts.Purchase, keys, [0, 3600, 3, 3600, "t", "o-1", "b:ü", "c", 1, "o-2", "b", "ü:c", 1]);
        Assert.StartsWith("o-1|", (string?)await Db.HashGetAsync(RedisKeys.Requests(sku, 0), RedisKeys.RequestField("b:ü", "c")));
        Assert.StartsWith("o-2|", (string?)await Db.HashGetAsync(RedisKeys.Requests(sku, 0), RedisKeys.RequestField("b", "ü:c")));
        Assert.Equal("4:b:ü:c", RedisKeys.RequestField("b:ü", "c"));
    }

    [Fact]
    public async Task Purchase_answers_S_when_the_bucket_has_too_little_and_writes_nothing()
    {
        var sku = ClusterFixture.NewSku("lua-purchase-short");
        await Db.StringSetAsync(RedisKeys.Stock(sku, 0), 1);
        Assert.Equal(new[] { "1", "S" }, await PurchaseAsync(sku, "t1", ("o-a", "a", "2")));
        Assert.False(await Db.KeyExistsAsync(RedisKeys.Requests(sku, 0)));
        Assert.False(await Db.KeyExistsAsync(RedisKeys.Units(sku, 0)));
        Assert.False(await Db.KeyExistsAsync(RedisKeys.Log(sku, 0)));
    }

    [Fact]
    public async Task A_check_back_rollback_is_final_the_late_script_deducts_nothing()
    {
        var sku = ClusterFixture.NewSku("lua-fence");
        await Db.StringSetAsync(RedisKeys.Stock(sku, 0), 5);
        // The check-back comes first (the script is still on its way): it fences the transaction.
        Assert.Equal(new[] { "X" }, await FenceAsync(sku, "late", ("a", "o-a")));
        Assert.Equal(new[] { "-3" }, await PurchaseAsync(sku, "late", ("o-a", "a", "1")));
        Assert.Equal(5, (long)await Db.StringGetAsync(RedisKeys.Stock(sku, 0)));
        Assert.False(await Db.KeyExistsAsync(RedisKeys.Requests(sku, 0)));
        // Asked again, the answer stays a rollback.
        Assert.Equal(new[] { "X" }, await FenceAsync(sku, "late", ("a", "o-a")));

        // A transaction whose script ran first is committed, order by order: a replay in the batch is not its order.
        await PurchaseAsync(sku, "on-time", ("o-b", "b", "1"), ("o-b2", "b", "1"));
        Assert.Equal(new[] { "C", "1", "0" }, await FenceAsync(sku, "on-time", ("b", "o-b"), ("b", "o-b2")));
    }

    private async Task<string> SealAsync(string sku, string tx) =>
        (string)(await RedisScripts.EvaluateAsync(Db, _scripts.Seal, [RedisKeys.Fence(sku, 0, tx)], [3600]))!;

    [Fact]
    public async Task An_epoch_takes_batches_until_the_check_back_seals_it_and_its_log_entries_name_it()
    {
        var sku = ClusterFixture.NewSku("lua-epoch");
        await Db.StringSetAsync(RedisKeys.Stock(sku, 0), 5);
        // Two batches of one transaction: the second finds the first's fence ('C') and goes on.
        Assert.Matches(@"^\d+-\d+$", (await PurchaseAsync(sku, "e", ("o-a", "a", "1")))[1]);
        Assert.Matches(@"^\d+-\d+$", (await PurchaseAsync(sku, "e", ("o-b", "b", "1")))[1]);
        var entries = await Db.StreamRangeAsync(RedisKeys.Log(sku, 0));
        Assert.Equal(new[] { "e", "e" }, entries.Select(e => DeductionLog.TransactionOf(e)).ToArray());

        // Sealed: closed for good, with what it has.
        Assert.Equal("F", await SealAsync(sku, "e"));
        Assert.Equal(new[] { "-3" }, await PurchaseAsync(sku, "e", ("o-c", "c", "1")));
        Assert.Equal(-3, (long)((RedisResult[])(await RedisScripts.EvaluateAsync(Db, _scripts.Deduct,
            [RedisKeys.Stock(sku, 0), RedisKeys.Log(sku, 0), RedisKeys.Fence(sku, 0, "e"), RedisKeys.OrderMarker(sku, 0, "o-d")],
            [0, 3600, "e", "o-d", "u", "r-d", 1]))!)[0]);
        Assert.Equal("F", await SealAsync(sku, "e"));
        Assert.Equal(3, (long)await Db.StringGetAsync(RedisKeys.Stock(sku, 0)));
        Assert.Equal(2, await Db.StreamLengthAsync(RedisKeys.Log(sku, 0)));

        // Sealed before any batch ran: rolled back, and stays so.
        Assert.Equal("X", await SealAsync(sku, "unused"));
        Assert.Equal(new[] { "-3" }, await PurchaseAsync(sku, "unused", ("o-e", "e", "1")));
        Assert.Equal("X", await SealAsync(sku, "unused"));
        Assert.Equal(3, (long)await Db.StringGetAsync(RedisKeys.Stock(sku, 0)));
    }

    [Fact]
    public async Task Deduct_refuses_a_fenced_transaction()
    {
        var sku = ClusterFixture.NewSku("lua-deduct-fence");
        await Db.StringSetAsync(RedisKeys.Stock(sku, 0), 5);
        var fence = RedisKeys.Fence(sku, 0, "tx");
        await Db.StringSetAsync(fence, "X");
        var results = (RedisResult[])(await RedisScripts.EvaluateAsync(Db, _scripts.Deduct,
            [RedisKeys.Stock(sku, 0), RedisKeys.Log(sku, 0), fence, RedisKeys.OrderMarker(sku, 0, "o1")], [0, 3600, "tx", "o1", "u1", "r1", 1]))!;
        Assert.Equal(-3, (long)results[0]);
        Assert.Equal(5, (long)await Db.StringGetAsync(RedisKeys.Stock(sku, 0)));
        Assert.False(await Db.KeyExistsAsync(RedisKeys.OrderMarker(sku, 0, "o1")));
    }

    [Fact]
    public void Every_key_of_a_bucket_and_of_a_quota_shard_shares_one_hash_slot()
    {
                var sku = "slot-check";
        var bucketSlots = new[]
        {
            RedisKeys.Stock(sku, 7), RedisKeys.Log(sku, 7), RedisKeys.OrderMarker(sku, 7, "o"), RedisKeys.Transfer(sku, 7, "v2"),
        }.Select(k => KeySlot.Of(k!)).Distinct().ToArray();
        Assert.Single(bucketSlots);
        var quotaSlots = new[]
        {
            RedisKeys.Units(sku, 3), RedisKeys.Requests(sku, 3),
        }.Select(k => KeySlot.Of(k!)).Distinct().ToArray();
        Assert.Single(quotaSlots);
        // Quota shard N lives in bucket N's slot, with the transaction fences: a home purchase is one script.
        var home = new[]
        {
            RedisKeys.Stock(sku, 3), RedisKeys.Log(sku, 3), RedisKeys.Units(sku, 3), RedisKeys.Requests(sku, 3),
            RedisKeys.Fence(sku, 3, "tx"),
        }.Select(k => KeySlot.Of(k!)).Distinct();
        Assert.Single(home);
        // Buckets of one SKU are spread over slots (and so over the masters of a Redis Cluster).
        var spread = Enumerable.Range(0, 16).Select(i => KeySlot.Of(RedisKeys.Stock(sku, i)!)).Distinct().Count();
        Assert.True(spread > 8, $"only {spread} distinct slots for 16 buckets");
    }
}

public sealed class KeySlotTests
{
    [Theory]
    [InlineData("123456789", 12739)] // the CRC16/XMODEM check value 0x31C3
    [InlineData("{user1000}.following", 3443)]
    [InlineData("user1000", 3443)]
    public void Matches_the_Redis_Cluster_specification(string key, int slot) => Assert.Equal(slot, KeySlot.Of(key));
}
