using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace OrleansFlashSale.Client.Api.Dashboard;

/// <summary>
/// Assembles the dashboard's answer. The books are the reconciliation's summary (counts only: no order is read one by
/// one, whatever the sale's size), shared for <see cref="BooksMaxAge"/> by every open page instead of read once per
/// poll per page. The full verify, which reads each order's Redis proof, runs only when an operator asks for it.
/// </summary>
public sealed partial class DashboardService(IGrainFactory grains, PurchaseRates rates, TimeProvider time, ILogger<DashboardService> logger)
{
    public static readonly TimeSpan BooksMaxAge = TimeSpan.FromSeconds(3);

    private static readonly TimeSpan SalesMaxAge = TimeSpan.FromSeconds(5);

    private readonly ConcurrentDictionary<string, Cached<ReconciliationReport?>> _books = new(StringComparer.Ordinal);
    private Cached<string[]>? _sales;

    /// <summary>The dashboard for <paramref name="sku"/> (or, when null, the last of the sorted SKUs); null when the SKU is unknown.</summary>
    public async Task<DashboardView?> BuildAsync(string? sku)
    {
        var silosTask = ReadSilosAsync();
        string[] sales;
        try
        {
            sales = await GetSalesAsync();
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The list comes from MySQL; the sale asked for can still be shown from Redis and the grains.
            LogSalesFailed(logger, ex);
            sales = [];
        }

        var pickedHere = sku is null;
        sku ??= sales.Length > 0 ? sales[^1] : null;
        if (sku is null)
        {
            var (silos, silosError) = await silosTask;
            return new DashboardView(time.GetUtcNow(), sales, null, null, null, null, null, silos, silosError);
        }

        var statusTask = grains.Product(sku).GetStatusAsync(refresh: false);
        var booksTask = ReadBooksAsync(sku);
        var status = await statusTask;
        if (status is null)
        {
            // The list is read from MySQL's inventory, which a database shared by several clusters (tests) fills
            // with sales this cluster does not own: a SKU picked from it is no error of the caller's.
            if (pickedHere)
            {
                var (silos, silosError) = await silosTask;
                return new DashboardView(time.GetUtcNow(), sales, null, null, null, null, null, silos, silosError);
            }

            return null;
        }

        // The list is a few seconds old: a sale created since is shown all the same.
        if (!sales.Contains(sku, StringComparer.Ordinal))
        {
            sales = [.. sales, sku];
        }

        var (books, booksError) = await booksTask;
        var (members, membersError) = await silosTask;
        var sale = new DashboardSale(status.Sale.Sku, status.Sale.Mode, status.Sale.Stock, status.Remaining, status.Sold,
            status.State, status.Sale.PerUserLimit, status.LayoutVersion, status.InTransfer,
            status.Buckets.Select(b => new BucketView(b.Index, b.Remaining)).ToArray());
        return new DashboardView(time.GetUtcNow(), sales, sku, sale, ReadRates(sku), books, booksError, members, membersError);
    }

    private DashboardRates ReadRates(string sku)
    {
        var window = rates.Read(sku);
        return new DashboardRates(
            PurchaseRates.WindowSeconds,
            window.StartUnixSeconds,
            window.Counts,
            window.Counts.ToDictionary(c => c.Key, c => c.Value[^60..].Sum(), StringComparer.Ordinal),
            window.Counts.ToDictionary(c => c.Key, c => c.Value.Sum(), StringComparer.Ordinal));
    }

    private async Task<string[]> GetSalesAsync()
    {
        var cached = _sales;
        if (cached is null || cached.IsOlderThan(time, SalesMaxAge))
        {
            cached = new Cached<string[]>(time.GetUtcNow(), grains.GetGrain<IReconciliationGrain>(0).ListSkusAsync());
            _sales = cached;
        }

        try
        {
            return await cached.Value;
        }
        catch
        {
            // A failed read is not kept: the next poll asks again.
            Interlocked.CompareExchange(ref _sales, null, cached);
            throw;
        }
    }

    private async Task<(DashboardBooks? Books, string? Error)> ReadBooksAsync(string sku)
    {
        var cached = _books.AddOrUpdate(sku,
            _ => new Cached<ReconciliationReport?>(time.GetUtcNow(), SummarizeAsync(sku)),
            (_, old) => old.IsOlderThan(time, BooksMaxAge) && old.Value.IsCompleted
                ? new Cached<ReconciliationReport?>(time.GetUtcNow(), SummarizeAsync(sku))
                : old);
        if (_books.Count > PurchaseRates.MaxSkus)
        {
            _books.TryRemove(_books.MinBy(b => b.Value.At).Key, out _);
        }

        try
        {
            var report = await cached.Value;
            return report is null ? (null, "no reconciliation for this sale") : (ToBooks(report, cached.At), null);
        }
        catch (Exception ex)
        {
            // The books need Redis, JetStream and MySQL; the rest of the dashboard is still worth showing.
            LogBooksFailed(logger, ex, sku);
            return (null, $"the books could not be read ({ex.GetType().Name}); retrying");
        }
    }

    private Task<ReconciliationReport?> SummarizeAsync(string sku) =>
        grains.GetGrain<IReconciliationGrain>(0).SummarizeAsync(sku);

    private static DashboardBooks ToBooks(ReconciliationReport r, DateTimeOffset at) => new(
        at,
        r.RedisSold,
        r.MySqlLiveUnits,
        r.RedisSold - r.MySqlLiveUnits,
        r.OldestUnpersistedAgeMs,
        r.PendingInPipeline.Count,
        r.MissingInMySql.Count,
        r.Messages.WriterPending,
        r.Messages.HalfMessagesForSku,
        r.Messages.DeadLettersForSku,
        r.Messages.CheckMaxForSku,
        r.AvailableStock,
        r.MySqlOrders,
        r.AtRest,
        r.Drift,
        r.Problems);

    private async Task<(IReadOnlyList<DashboardSilo> Silos, string? Error)> ReadSilosAsync()
    {
        try
        {
            var hosts = await grains.GetGrain<IManagementGrain>(0).GetDetailedHosts(onlyActive: false);
            return (hosts
                .OrderBy(h => h.SiloAddress.ToString(), StringComparer.Ordinal)
                .Select(h => new DashboardSilo(h.SiloAddress.ToString(), h.SiloName, h.HostName, h.Status.ToString(), h.StartTime, h.IAmAliveTime))
                .ToArray(), null);
        }
        catch (Exception ex) when (ex is OrleansException or TimeoutException)
        {
            LogMembersFailed(logger, ex);
            return ([], $"cluster members could not be read ({ex.GetType().Name})");
        }
    }

    private sealed record Cached<T>(DateTimeOffset At, Task<T> Value)
    {
        public bool IsOlderThan(TimeProvider time, TimeSpan age) => time.GetUtcNow() - At > age;
    }

    [LoggerMessage(EventId = 3101, Level = LogLevel.Warning, Message = "Dashboard: the books of {Sku} could not be read")]
    private static partial void LogBooksFailed(ILogger logger, Exception exception, string sku);

    [LoggerMessage(EventId = 3103, Level = LogLevel.Warning, Message = "Dashboard: the list of sales could not be read")]
    private static partial void LogSalesFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3102, Level = LogLevel.Warning, Message = "Dashboard: cluster members could not be read")]
    private static partial void LogMembersFailed(ILogger logger, Exception exception);
}
