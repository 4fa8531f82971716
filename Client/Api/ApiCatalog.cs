namespace OrleansFlashSale.Client.Api;

/// <summary>One answer of an operation that is not an error.</summary>
public sealed record ApiSuccess(int Status, Type? Type, string Description);

/// <summary>What an endpoint takes and answers, for the OpenAPI document (<see cref="OpenApiDescription"/>).</summary>
public sealed record ApiOperation(string Method, string Route, string Summary, Type? Body, ApiSuccess[] Success,
    (int Status, string[] Codes)[] Specific, bool Admin = false, bool CallsCluster = true, bool Buyer = false)
{
    /// <summary>Errors by status: the operation's own, plus those its body, admin check and cluster call can give.</summary>
    public IEnumerable<(int Status, string[] Codes)> Errors()
    {
        var all = new SortedDictionary<int, SortedSet<string>>();
        void Add(int status, params string[] codes)
        {
            if (!all.TryGetValue(status, out var set))
            {
                all[status] = set = new SortedSet<string>(StringComparer.Ordinal);
            }

            set.UnionWith(codes);
        }

        if (Body is not null || Route.Contains('{', StringComparison.Ordinal))
        {
            // A body or a path segment to validate.
            Add(StatusCodes.Status400BadRequest, ErrorCodes.InvalidRequest);
        }

        if (Body is not null)
        {
            Add(StatusCodes.Status413PayloadTooLarge, ErrorCodes.PayloadTooLarge);
            Add(StatusCodes.Status415UnsupportedMediaType, ErrorCodes.UnsupportedMediaType);
        }

        if (Admin)
        {
            Add(StatusCodes.Status401Unauthorized, ErrorCodes.Unauthorized);
            Add(StatusCodes.Status403Forbidden, ErrorCodes.Forbidden);
        }

        if (Buyer)
        {
            // Only with FlashSale:Auth:Mode jwt: the bearer token names the buyer.
            Add(StatusCodes.Status401Unauthorized, SecurityErrorCodes.BuyerTokenMissing, SecurityErrorCodes.BuyerTokenInvalid, SecurityErrorCodes.BuyerTokenExpired);
            Add(StatusCodes.Status403Forbidden, SecurityErrorCodes.UserMismatch);
        }

        if (CallsCluster)
        {
            Add(StatusCodes.Status503ServiceUnavailable, ErrorCodes.Unavailable);
        }

        foreach (var (status, codes) in Specific)
        {
            Add(status, codes);
        }

        return all.Select(p => (p.Key, p.Value.ToArray()));
    }
}

public static class ApiCatalog
{
    public static readonly ApiOperation[] Operations =
    [
        new("POST", "/api/sales", "Create a sale", typeof(CreateSaleBody),
            [new(201, typeof(SaleView), "Created")],
            [(409, [ErrorCodes.SaleExists])], Admin: true),
        new("GET", "/api/sales/{sku}", "Sale status: stock, remaining, sold, buckets", null,
            [new(200, typeof(SaleStatusView), "The sale")],
            [(404, [ErrorCodes.UnknownSale])]),
        new("POST", "/api/sales/{sku}/purchases", "Buy; replaying a requestId returns the original order", typeof(PurchaseBody),
            [new(201, typeof(OrderView), "Order created"), new(200, typeof(OrderView), "Replay: the original order")],
            [(403, [SecurityErrorCodes.PurchaseTokenMissing, SecurityErrorCodes.PurchaseTokenInvalid, SecurityErrorCodes.PurchaseTokenExpired,
                    SecurityErrorCodes.PurchaseTokenWrongUser, SecurityErrorCodes.PurchaseTokenWrongSale]),
             (404, [ErrorCodes.UnknownSale]), (409, [ErrorCodes.SoldOut, ErrorCodes.LimitExceeded, ErrorCodes.NotStarted, ErrorCodes.Ended]),
             (429, [ErrorCodes.RateLimited, ErrorCodes.Overloaded]), (503, [SecurityErrorCodes.PurchaseTokensNotConfigured])],
            Buyer: true),
        new("POST", "/api/sales/{sku}/purchase-tokens", "A short-lived purchase token for one buyer and sale", typeof(PurchaseTokenBody),
            [new(200, typeof(PurchaseTokenView), "The token")],
            [(404, [ErrorCodes.UnknownSale]), (409, [ErrorCodes.NotStarted, ErrorCodes.Ended]), (503, [SecurityErrorCodes.PurchaseTokensNotConfigured])],
            Buyer: true),
        new("PUT", "/api/sales/{sku}/buckets", "Re-bucket a sale while it sells", typeof(RebucketBody),
            [new(200, typeof(SaleStatusView), "The new layout")],
            [(404, [ErrorCodes.UnknownSale])], Admin: true),
        new("POST", "/api/sales/{sku}/close", "Close a sale: it ends now, and its per-user records expire after the payment timeout (repeat-safe)", null,
            [new(200, typeof(ClosedSaleView), "The closed sale")],
            [(404, [ErrorCodes.UnknownSale])], Admin: true),
        new("GET", "/api/admin/writer", "The order writer's pace (orders per second into MySQL, 0 = full speed)", null,
            [new(200, typeof(WriterPaceView), "The pace")], [], Admin: true),
        new("PUT", "/api/admin/writer", "Pace the order writer: JetStream holds a burst and MySQL takes it at this rate (0 = full speed)", typeof(WriterPaceBody),
            [new(200, typeof(WriterPaceView), "The new pace")], [(400, [ErrorCodes.InvalidRequest])], Admin: true),
        new("GET", "/api/admin/sales", "SKUs of every sale", null,
            [new(200, null, "{ skus: [...] }")], [], Admin: true),
        new("GET", "/api/admin/verify/{sku}", "Reconcile Redis, JetStream and MySQL for one sale (repair=true to repair)", null,
            [new(200, null, "The reconciliation report")],
            [(404, [ErrorCodes.UnknownSale])], Admin: true),
        new("GET", "/api/admin/dashboard", "Figures of the dashboard page for one sale (?sku=)", null,
            [new(200, null, "The dashboard view")],
            [(400, [ErrorCodes.InvalidRequest]), (404, [ErrorCodes.UnknownSale])], Admin: true),
        new("GET", "/api/admin/cluster", "Orleans membership: silos, status, last I-am-alive", null,
            [new(200, null, "The membership table")], [], Admin: true),
        new("GET", "/api/orders/{orderId}", "Order status", null,
            [new(200, typeof(OrderView), "The order")],
            [(403, [ErrorCodes.NotYourOrder]), (404, [ErrorCodes.UnknownOrder])], Buyer: true),
        new("POST", "/api/orders/{orderId}/pay", "Pay an order (repeat-safe)", typeof(OrderActionBody),
            [new(200, typeof(OrderView), "Paid")],
            [(403, [ErrorCodes.NotYourOrder]), (404, [ErrorCodes.UnknownOrder]),
             (409, [ErrorCodes.OrderCancelled, ErrorCodes.OrderExpired, ErrorCodes.OrderNotReady])], Buyer: true),
        new("POST", "/api/orders/{orderId}/cancel", "Cancel an order and return its units (repeat-safe)", typeof(OrderActionBody),
            [new(200, typeof(OrderView), "Cancelled")],
            [(403, [ErrorCodes.NotYourOrder]), (404, [ErrorCodes.UnknownOrder]),
             (409, [ErrorCodes.OrderPaid, ErrorCodes.OrderExpired, ErrorCodes.OrderNotReady])], Buyer: true),
    ];

    public static ApiOperation? Find(string method, string route) =>
        Operations.FirstOrDefault(o => string.Equals(o.Method, method, StringComparison.OrdinalIgnoreCase)
            && string.Equals(o.Route, route, StringComparison.Ordinal));
}
