using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using MySqlConnector;

namespace OrleansFlashSale.Persistence;

/// <summary>
/// What every writer of the store does around its transactions: which failures are worth another attempt, the
/// backoff between attempts, opening a connection, sending a statement, and the rollback of a failed attempt.
/// </summary>
public static partial class MySqlTransactions
{
    /// <summary>MariaDB's ER_CONNECTION_KILLED, which MySqlErrorCode does not name.</summary>
    private const int ConnectionKilled = 1927;

    private static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(20);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(1);

    /// <summary>Deadlock, lock wait timeout, or a connection that broke or could not be opened.</summary>
    public static bool IsTransient(Exception exception) => exception switch
    {
        MySqlException { ErrorCode: MySqlErrorCode.LockDeadlock or MySqlErrorCode.LockWaitTimeout or MySqlErrorCode.XARBDeadlock
            or MySqlErrorCode.UnableToConnectToHost or MySqlErrorCode.ServerShutdown } => true,
        MySqlException { Number: ConnectionKilled } => true,
        // The driver reports a connection lost mid-command as a MySqlException around the socket error.
        MySqlException { InnerException: IOException or SocketException } => true,
        IOException or SocketException => true,
        _ => false,
    };

    /// <summary>
    /// MySQL refused this statement itself (a constraint, a check, a drifted row): trying again later will not help,
    /// while a transient failure (<see cref="IsTransient"/>) or a failure that is not MySQL's is an outage.
    /// </summary>
    public static bool IsRefusal(Exception exception) => exception is MySqlException && !IsTransient(exception);

    /// <summary>A trivial query on a connection of its own: the server answers and lets us in.</summary>
    public static async Task PingAsync(string connectionString, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(connectionString, cancellationToken);
        await using var command = new MySqlCommand("SELECT 1", connection);
        await command.ExecuteScalarAsync(cancellationToken);
    }

    /// <summary>
    /// Runs <paramref name="attemptAsync"/> (given the attempt number, from 1) until it returns. A transient failure
    /// (<see cref="IsTransient"/>) is tried again after <see cref="Backoff"/>, at most <paramref name="maxRetries"/>
    /// times and not once <paramref name="cancellationToken"/> is cancelled; <paramref name="onRetry"/> learns of each
    /// retry (the failure, the attempt that failed, the delay) before the wait. Any other failure is thrown at once.
    /// </summary>
    /// <remarks>
    /// Only for work that is safe to repeat whole: every writer here keys its rows by order id, so an attempt whose
    /// COMMIT did reach the server before the connection broke is found stored by the next.
    /// </remarks>
    internal static async Task<T> RetryAsync<T>(int maxRetries, Func<int, Task<T>> attemptAsync, Action<Exception, int, TimeSpan> onRetry,
        CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await attemptAsync(attempt);
            }
            catch (Exception ex) when (attempt <= maxRetries && IsTransient(ex) && !cancellationToken.IsCancellationRequested)
            {
                var delay = Backoff(attempt);
                onRetry(ex, attempt, delay);
                await Task.Delay(delay, cancellationToken);
            }
        }
    }

    /// <summary>The wait after failed attempt <paramref name="attempt"/> (from 1).</summary>
    internal static TimeSpan Backoff(int attempt)
    {
        // Exponential with full jitter, so groups that deadlocked each other do not collide again in step.
        var ceiling = Math.Min(MaxBackoff.TotalMilliseconds, FirstBackoff.TotalMilliseconds * Math.Pow(2, attempt - 1));
        return TimeSpan.FromMilliseconds(ceiling / 2 + Random.Shared.NextDouble() * ceiling / 2);
    }

    /// <summary>An open connection from the pool; disposed again if it cannot be opened.</summary>
    internal static async Task<MySqlConnection> OpenAsync(string connectionString, CancellationToken cancellationToken)
    {
        var connection = new MySqlConnection(connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    internal static async Task ExecuteAsync(MySqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new MySqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Sends ROLLBACK after a failed attempt, if the connection still stands. A failure to send it is logged on
    /// <paramref name="logger"/> (the writer's) and goes no further: the failure that led here is what the caller throws.
    /// </summary>
    internal static async Task TryRollbackAsync(MySqlConnection connection, ILogger logger)
    {
        try
        {
            if (connection.State == System.Data.ConnectionState.Open)
            {
                await ExecuteAsync(connection, InventorySql.Rollback, CancellationToken.None);
            }
        }
        catch (Exception ex) when (ex is MySqlException or IOException or InvalidOperationException)
        {
            // The connection is broken; the server rolls back when it notices, and the pool drops it.
            LogRollbackFailed(logger, ex);
        }
    }

    [LoggerMessage(EventId = 1104, Level = LogLevel.Warning, Message = "ROLLBACK after a failed transaction could not be sent; the server rolls back when the connection closes")]
    private static partial void LogRollbackFailed(ILogger logger, Exception exception);
}
