namespace OrleansFlashSale.Grains;

/// <summary>
/// The checks every purchase meets before it touches Redis, wherever it enters (the home bucket's fast path or the
/// quota grain's overflow path), so both answer a bad request the same way.
/// </summary>
internal static class PurchaseChecks
{
    /// <summary>Null when the purchase may go on, else the refusal to answer with.</summary>
    public static PurchaseResult? Refuse(string sku, SaleDefinition? sale, PurchaseRequest request, DateTimeOffset now)
    {
        if (request.Sku != sku)
        {
            return PurchaseResult.Rejected(PurchaseOutcome.Invalid, "the request is for another sale");
        }

        if (sale is null)
        {
            return PurchaseResult.Rejected(PurchaseOutcome.UnknownSale);
        }

        if ((SaleRules.ValidateId(request.UserId, "userId") ?? SaleRules.ValidateId(request.RequestId, "requestId")) is { } idError)
        {
            return PurchaseResult.Rejected(PurchaseOutcome.Invalid, idError);
        }

        if (request.Quantity < 1 || request.Quantity > sale.PerUserLimit)
        {
            return PurchaseResult.Rejected(PurchaseOutcome.Invalid, $"quantity must be between 1 and {sale.PerUserLimit}");
        }

        if (sale.StartsAt is { } start && now < start)
        {
            return PurchaseResult.Rejected(PurchaseOutcome.NotStarted, $"the sale starts at {start:O}");
        }

        if (sale.EndsAt is { } end && now >= end)
        {
            return PurchaseResult.Rejected(PurchaseOutcome.Ended, $"the sale ended at {end:O}");
        }

        return null;
    }

    public static string LimitDetail(SaleDefinition sale) => $"at most {sale.PerUserLimit} units per user";

    public const string RetryDetail = "the stock service did not answer; retry with the same requestId";
}
