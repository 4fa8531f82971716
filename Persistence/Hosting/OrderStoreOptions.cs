using Microsoft.Extensions.Options;
using MySqlConnector;

namespace OrleansFlashSale.Persistence;

/// <summary>Which SQL dialect ends a group transaction.</summary>
public enum OrderStoreFlavor
{
    /// <summary>Plain UPDATE, then COMMIT: MariaDB, MySQL and anything else.</summary>
    MariaDb,

    /// <summary>
    /// Alibaba AliSQL / PolarDB Inventory Hint: the UPDATE carries COMMIT_ON_SUCCESS ROLLBACK_ON_FAIL
    /// TARGET_AFFECT_ROW(1) and ends the transaction itself, saving the COMMIT round trip while the hot inventory
    /// row is locked. Only for servers that know the hint: elsewhere it is a comment and nothing would commit.
    /// </summary>
    AliSql,
}

/// <summary>The MySQL order store and its group commit (section <c>FlashSale:OrderStore</c>).</summary>
public sealed class OrderStoreOptions
{
    public const string Section = "FlashSale:OrderStore";

    /// <summary>
    /// MySqlConnector connection string. When empty, <c>FlashSale:MySql:ConnectionString</c> (the silo database)
    /// is used.
    /// </summary>
    public string ConnectionString { get; set; } = "";

    public OrderStoreFlavor Flavor { get; set; } = OrderStoreFlavor.MariaDb;

    /// <summary>Most records one group transaction carries. Larger groups mean fewer transactions, larger packets.</summary>
    public int MaxGroupSize { get; set; } = 1000;

    /// <summary>
    /// Group transactions of one SKU that may run at once. With 1 the next group waits for the previous COMMIT, and
    /// MySQL and the committer take turns being idle; the hot row's lock orders the UPDATEs either way.
    /// </summary>
    public int CommitsPerSku { get; set; } = 2;

    /// <summary>Retries of a group after a deadlock, a lock wait timeout or a lost connection.</summary>
    public int MaxRetries { get; set; } = 5;

    public override string ToString()
    {
        string connection;
        try
        {
            var builder = new MySqlConnectionStringBuilder(ConnectionString);
            if (builder.ContainsKey("Password"))
            {
                builder.Password = "***";
            }

            connection = builder.ConnectionString;
        }
        catch (ArgumentException)
        {
            connection = "(unreadable connection string)";
        }

        return $"{connection}; Flavor={Flavor}; MaxGroupSize={MaxGroupSize}; CommitsPerSku={CommitsPerSku}; MaxRetries={MaxRetries}";
    }
}

public sealed class OrderStoreOptionsValidator : IValidateOptions<OrderStoreOptions>
{
    public const int MaxGroupSizeLimit = 10_000;

    public const int MaxCommitsPerSku = 16;

    public ValidateOptionsResult Validate(string? name, OrderStoreOptions options)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            errors.Add($"{OrderStoreOptions.Section}:ConnectionString is required (or FlashSale:MySql:ConnectionString): Server=...;Port=...;Database=...;User ID=...;Password=....");
        }
        else
        {
            try
            {
                if (string.IsNullOrEmpty(new MySqlConnectionStringBuilder(options.ConnectionString).Database))
                {
                    errors.Add($"{OrderStoreOptions.Section}:ConnectionString must name a Database.");
                }
            }
            catch (ArgumentException ex)
            {
                errors.Add($"{OrderStoreOptions.Section}:ConnectionString is not valid: {ex.Message}");
            }
        }

        if (!Enum.IsDefined(options.Flavor))
        {
            errors.Add($"{OrderStoreOptions.Section}:Flavor must be MariaDb or AliSql.");
        }

        if (options.MaxGroupSize is < 1 or > MaxGroupSizeLimit)
        {
            errors.Add($"{OrderStoreOptions.Section}:MaxGroupSize must be between 1 and {MaxGroupSizeLimit}.");
        }

        if (options.CommitsPerSku is < 1 or > MaxCommitsPerSku)
        {
            errors.Add($"{OrderStoreOptions.Section}:CommitsPerSku must be between 1 and {MaxCommitsPerSku}.");
        }

        if (options.MaxRetries is < 0 or > 100)
        {
            errors.Add($"{OrderStoreOptions.Section}:MaxRetries must be between 0 and 100.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
