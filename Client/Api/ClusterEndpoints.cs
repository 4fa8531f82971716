using Orleans.Runtime;

namespace OrleansFlashSale.Client.Api;

/// <summary>One row of the Orleans membership table, as operators read it.</summary>
public sealed record ClusterMemberView(
    string Endpoint,
    int Generation,
    string Status,
    int GatewayPort,
    string SiloName,
    string HostName,
    DateTime StartTime,
    DateTime IAmAliveTime,
    int SuspectVotes);

/// <summary><c>GET /api/admin/cluster</c>: the membership as the silos record it (IManagementGrain.GetDetailedHosts).</summary>
public static class ClusterEndpoints
{
    public static IEndpointRouteBuilder MapFlashSaleCluster(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/admin/cluster", GetClusterAsync);
        return app;
    }

    internal static async Task<IResult> GetClusterAsync(HttpRequest request, AdminAuth auth, IGrainFactory grains, ILoggerFactory logs)
    {
        if (auth.Check(request) is { } denied)
        {
            return denied;
        }

        return await SaleEndpoints.GuardAsync(logs, async () =>
        {
            // Dead entries are kept: they show which silos left or were declared dead, and when.
            var hosts = await grains.GetGrain<IManagementGrain>(0).GetDetailedHosts(onlyActive: false);
            var members = hosts
                .OrderBy(h => h.SiloAddress.Endpoint.Port).ThenByDescending(h => h.SiloAddress.Generation)
                .Select(h => new ClusterMemberView(
                    h.SiloAddress.Endpoint.ToString(),
                    h.SiloAddress.Generation,
                    h.Status.ToString(),
                    h.ProxyPort,
                    h.SiloName ?? "",
                    h.HostName ?? "",
                    h.StartTime,
                    h.IAmAliveTime,
                    h.SuspectTimes?.Count ?? 0))
                .ToList();
            return TypedResults.Ok(new { active = members.Count(m => m.Status == nameof(SiloStatus.Active)), members });
        });
    }
}
