using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using MySqlConnector;

namespace OrleansFlashSale.Persistence;

/// <summary>
/// Applies the versioned SQL files of <c>deploy/sql</c> (embedded in this assembly) in name order. Every file is
/// idempotent on its own; <c>schema_migrations</c> records what ran, and a named lock keeps silos that start
/// together from racing.
/// </summary>
/// <remarks>
/// Takes a connection string, not the order store's options: the schema belongs to the silo's database
/// (<c>FlashSale:MySql</c>), which the order store only shares by default.
/// </remarks>
public sealed partial class SchemaMigrator
{
    private const string LockName = "orleans_flashsale_schema";
    private readonly string _connectionString;
    private readonly ILogger<SchemaMigrator> _logger;

    public SchemaMigrator(string connectionString, ILogger<SchemaMigrator> logger)
    {
        _connectionString = connectionString;
        _logger = logger;
    }

    public static IReadOnlyList<(string Name, string Sql)> Scripts()
    {
        var assembly = typeof(SchemaMigrator).Assembly;
        return assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith("sql/", StringComparison.Ordinal) && n.EndsWith(".sql", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .Select(n => (n["sql/".Length..], Read(assembly, n)))
            .ToArray();
    }

    public async Task ApplyAsync(CancellationToken cancellationToken)
    {
        var builder = new MySqlConnectionStringBuilder(_connectionString) { AllowUserVariables = true };
        await using var connection = await MySqlTransactions.OpenAsync(builder.ConnectionString, cancellationToken);
        await MySqlTransactions.ExecuteAsync(connection, $"SELECT GET_LOCK('{LockName}', 60)", cancellationToken);
        try
        {
            await MySqlTransactions.ExecuteAsync(connection, """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                  version VARCHAR(200) NOT NULL PRIMARY KEY,
                  checksum CHAR(64) NOT NULL,
                  applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
                """, cancellationToken);
            foreach (var (name, sql) in Scripts())
            {
                var checksum = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sql)));
                await using (var batch = new MySqlCommand(sql, connection))
                {
                    await batch.ExecuteNonQueryAsync(cancellationToken);
                }

                await using var record = new MySqlCommand(
                    "INSERT INTO schema_migrations (version, checksum) VALUES (@v, @c) ON DUPLICATE KEY UPDATE checksum = @c",
                    connection);
                record.Parameters.AddWithValue("@v", name);
                record.Parameters.AddWithValue("@c", checksum);
                await record.ExecuteNonQueryAsync(cancellationToken);
                LogApplied(_logger, name);
            }
        }
        finally
        {
            await MySqlTransactions.ExecuteAsync(connection, $"SELECT RELEASE_LOCK('{LockName}')", CancellationToken.None);
        }
    }

    private static string Read(Assembly assembly, string name)
    {
        using var stream = assembly.GetManifestResourceStream(name)!;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    [LoggerMessage(EventId = 6101, Level = LogLevel.Information, Message = "Schema file {Name} applied")]
    private static partial void LogApplied(ILogger logger, string name);
}
