using System.Collections.Concurrent;

namespace OrleansFlashSale.Tests;

/// <summary>
/// Black-box record of every request and its answer, checked after the run against Redis: acknowledged units equal
/// what Redis sold, no user above the limit, every replay answered with its original order.
/// </summary>
public sealed class SaleHistory
{
    private readonly ConcurrentDictionary<(string User, string Request), OrderInfo> _orders = new();
    private readonly ConcurrentDictionary<PurchaseOutcome, int> _outcomes = new();
    private int _replayMismatches;

    public int ReplayMismatches => _replayMismatches;

    public IReadOnlyDictionary<PurchaseOutcome, int> Outcomes => _outcomes;

    public int Count(PurchaseOutcome outcome) => _outcomes.GetValueOrDefault(outcome);

    public IEnumerable<OrderInfo> Orders => _orders.Values;

    public long AcknowledgedUnits => _orders.Values.Sum(o => (long)o.Quantity);

    public void Record(string user, string request, PurchaseResult result)
    {
        _outcomes.AddOrUpdate(result.Outcome, 1, (_, n) => n + 1);
        if (result.Outcome is PurchaseOutcome.Created or PurchaseOutcome.Replayed)
        {
            var order = result.Order!;
            var first = _orders.GetOrAdd((user, request), order);
            if (first.OrderId != order.OrderId)
            {
                Interlocked.Increment(ref _replayMismatches);
            }
        }
    }

    public int UsersAbove(int limit) => _orders.Values.GroupBy(o => o.UserId).Count(g => g.Sum(o => o.Quantity) > limit);

    public int DistinctOrderIds => _orders.Values.Select(o => o.OrderId).Distinct().Count();
}
