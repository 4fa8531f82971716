using System.Text.RegularExpressions;
using OrleansFlashSale.Persistence;

namespace OrleansFlashSale.UnitTests;

/// <summary>The SQL text of a group, for both flavours: AliSQL is not on this machine, so its SQL is checked here.</summary>
public sealed partial class InventorySqlTests
{
    private const string Batch = "0123456789abcdef0123456789abcdef";
    private const string Sku = "sku-sql";

    // Values that would be easy to spot if they ever leaked into the SQL text.
    private static readonly DeductionRecord[] Group =
    [
        new("order-zq-1", "request-zq-1", Sku, "user'zq\"1", 7777, 4242, 1_234_567_890_123),
        new("order-zq-2", "request-zq-2", Sku, "user-zq-2", 8888, 5353, 1_234_567_890_456),
    ];

    [Fact]
    public void AliSql_flavour_ends_with_the_hinted_UPDATE_and_sends_no_COMMIT()
    {
        var sql = new InventorySql(OrderStoreFlavor.AliSql).Build(Sku, Group, Batch);

        Assert.Null(sql.CommitStatement);
        var last = sql.Statements[^1];
        Assert.Same(sql.DeductStatement, last);
        Assert.StartsWith("UPDATE /*+ COMMIT_ON_SUCCESS ROLLBACK_ON_FAIL TARGET_AFFECT_ROW(1) */ inventory SET", last);
        Assert.Contains("available_stock >= @units", last);
        // The hint commits; a COMMIT or a second hint anywhere else would be a mistake.
        Assert.DoesNotContain(sql.Statements, s => CommitWord().IsMatch(s));
        Assert.Single(sql.Statements, s => s.Contains("/*+", StringComparison.Ordinal));
        // The hint is refused in autocommit mode: the transaction is begun explicitly, before anything is written.
        Assert.True(IndexOf(sql, "START TRANSACTION") < IndexOf(sql, "INSERT IGNORE INTO orders"));
    }

    [Fact]
    public void MariaDb_flavour_has_no_hint_and_ends_with_COMMIT()
    {
        var sql = new InventorySql(OrderStoreFlavor.MariaDb).Build(Sku, Group, Batch);

        Assert.Equal("COMMIT", sql.Statements[^1]);
        Assert.Single(sql.Statements, s => CommitWord().IsMatch(s));
        Assert.Equal(sql.DeductStatement, sql.Statements[^2]);
        Assert.StartsWith("UPDATE inventory SET available_stock = available_stock - @units WHERE sku = @sku AND available_stock >= @units", sql.DeductStatement);
        Assert.DoesNotContain(sql.Statements, s => s.Contains("/*", StringComparison.Ordinal));
    }

    [Fact]
    public void Both_flavours_share_everything_but_the_end()
    {
        var mariaDb = new InventorySql(OrderStoreFlavor.MariaDb).Build(Sku, Group, Batch);
        var aliSql = new InventorySql(OrderStoreFlavor.AliSql).Build(Sku, Group, Batch);

        Assert.Equal(mariaDb.StageStatements, aliSql.StageStatements);
        Assert.Equal(mariaDb.Parameters, aliSql.Parameters);
        Assert.Equal(mariaDb.DeductStatement, aliSql.DeductStatement.Replace(InventorySql.InventoryHint + " ", ""));
        string[] order =
        [
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED", "START TRANSACTION", "INSERT IGNORE INTO orders",
        ];
        Assert.Equal(order.Length, mariaDb.StageStatements.Count);
        Assert.All(order.Zip(mariaDb.StageStatements), pair => Assert.StartsWith(pair.First, pair.Second));
        // One multi-row INSERT for the whole group, not one per order.
        Assert.Equal(Group.Length, Regex.Matches(mariaDb.StageStatements[2], @"\(@o\d+,").Count);
        // The sum, sent only after duplicates, looks up exactly the group's order ids and keeps this attempt's rows.
        Assert.Equal(mariaDb.SumStatement, aliSql.SumStatement);
        Assert.StartsWith("SELECT COALESCE(SUM(quantity), 0), COUNT(*) FROM orders WHERE order_id IN (", mariaDb.SumStatement);
        Assert.Equal(["@o0", "@o1"], Regex.Matches(mariaDb.SumStatement, @"@o\d+").Select(m => m.Value));
        Assert.EndsWith(" AND commit_batch = @batch", mariaDb.SumStatement);
        // With every order new, the group takes the units of all of them.
        Assert.Equal(Group.Sum(r => (long)r.Quantity), mariaDb.OfferedUnits);
    }

    [Theory]
    [InlineData(OrderStoreFlavor.MariaDb)]
    [InlineData(OrderStoreFlavor.AliSql)]
    public void Every_value_is_a_parameter(OrderStoreFlavor flavor)
    {
        var sql = new InventorySql(flavor).Build(Sku, Group, Batch);
        var text = string.Join(";\n", sql.Statements.Append(sql.SumStatement));

        // No literals at all: no quotes, and no value of a record or of the group anywhere in the text.
        Assert.DoesNotContain("'", text);
        Assert.DoesNotContain("\"", text);
        foreach (var record in Group)
        {
            foreach (var value in new object[] { record.OrderId, record.RequestId, record.UserId, record.Quantity, record.Bucket, record.CommittedAtMs })
            {
                Assert.DoesNotContain(Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture)!, text);
            }
        }

        Assert.DoesNotContain(Batch, text);
        Assert.DoesNotContain(Sku, text);
        Assert.DoesNotContain(OrderRowStatus.PendingPayment, text);

        // Every parameter named in the text is bound (units at run time), and every bound value is used.
        var named = ParameterName().Matches(text).Select(m => m.Value).ToHashSet();
        var bound = sql.Parameters.Select(p => p.Key).ToHashSet();
        Assert.Equal(bound.Append(InventorySql.UnitsParameter).Order(), named.Order());
        Assert.Equal(bound.Count, sql.Parameters.Count);

        // And the values bound are the records' own.
        var values = sql.Parameters.ToDictionary(p => p.Key, p => p.Value);
        Assert.Equal(Sku, values["@sku"]);
        Assert.Equal(Batch, values["@batch"]);
        for (var i = 0; i < Group.Length; i++)
        {
            Assert.Equal(Group[i].OrderId, values[$"@o{i}"]);
            Assert.Equal(Group[i].RequestId, values[$"@r{i}"]);
            Assert.Equal(Group[i].UserId, values[$"@u{i}"]);
            Assert.Equal(Group[i].Quantity, values[$"@q{i}"]);
            Assert.Equal(Group[i].Bucket, values[$"@b{i}"]);
            Assert.Equal(Group[i].CommittedAtMs, values[$"@t{i}"]);
        }
    }

    [Theory]
    [InlineData("user", 1, Sku, true)]
    [InlineData("", 1, Sku, false)]
    [InlineData("a-user-id-that-is-longer-than-the-sixty-four-characters-of-the-column", 1, Sku, false)]
    [InlineData("user", 0, Sku, false)]
    [InlineData("user", 1, "another-sku", false)]
    public void Records_the_schema_would_refuse_are_rejected_before_any_SQL(string user, int quantity, string sku, bool valid)
    {
        var record = new DeductionRecord("order-1", "request-1", sku, user, quantity, 0, 1);
        var build = () => new InventorySql(OrderStoreFlavor.MariaDb).Build(Sku, [record], Batch);
        if (valid)
        {
            Assert.NotNull(build());
        }
        else
        {
            Assert.ThrowsAny<ArgumentException>(build);
        }
    }

    [Fact]
    public void A_drifted_group_is_fitted_in_commit_order_whatever_the_order_of_its_messages()
    {
        static DeductionRecord Order(string id, int quantity, long committedAtMs) => new(id, "r-" + id, Sku, "u-" + id, quantity, 0, committedAtMs);
        var (a, b, c, d, stored) = (Order("a", 2, 10), Order("b", 5, 20), Order("c", 1, 30), Order("d", 3, 30), Order("e", 1, 5));
        DeductionRecord[] group = [d, a, stored, b, c, a];

        // Commit order a, b, c, d (c before d by order id at the same time); e is stored: 4 units give a and c.
        foreach (var permutation in new[] { group, group.Reverse().ToArray(), [c, stored, a, d, a, b] })
        {
            var fitted = InventorySql.Fit(permutation, new HashSet<string> { stored.OrderId }, available: 4);
            Assert.Equal([a, c], fitted.Insert);
            Assert.Equal([new RefusedOrder(b, 2), new RefusedOrder(d, 1)], fitted.Refused);
        }

        // No inventory row: every new order is refused, none stored.
        var missing = InventorySql.Fit(group, new HashSet<string>(), available: null);
        Assert.Empty(missing.Insert);
        Assert.Equal([new RefusedOrder(stored, null), new RefusedOrder(a, null), new RefusedOrder(b, null), new RefusedOrder(c, null), new RefusedOrder(d, null)], missing.Refused);
    }

    [Fact]
    public void A_drifted_group_applied_again_locks_the_row_and_commits_without_the_hint_in_either_flavour()
    {
        var read = InventorySql.LockAndReadStored(2);
        Assert.Contains("START TRANSACTION;\nSELECT available_stock FROM inventory WHERE sku = @sku FOR UPDATE;\n", read);
        Assert.EndsWith("SELECT order_id FROM orders WHERE order_id IN (@o0, @o1)", read);
        // The row is locked by then: the same guarded UPDATE as MariaDB's, and a COMMIT after it (AliSQL too).
        Assert.Equal(new InventorySql(OrderStoreFlavor.MariaDb).Build(Sku, Group, Batch).DeductStatement, InventorySql.DeductLocked);
    }

    private static int IndexOf(GroupSql sql, string prefix) =>
        sql.Statements.Select((s, i) => (s, i)).First(x => x.s.StartsWith(prefix, StringComparison.Ordinal)).i;

    // COMMIT as a statement, not COMMITTED nor COMMIT_ON_SUCCESS.
    [GeneratedRegex(@"\bCOMMIT\b", RegexOptions.IgnoreCase)]
    private static partial Regex CommitWord();

    [GeneratedRegex(@"@[A-Za-z_][A-Za-z0-9_]*")]
    private static partial Regex ParameterName();
}
