using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace OrleansFlashSale.Tests;

/// <summary><c>GET /api/admin/cluster</c> against the two-silo test cluster.</summary>
[Collection(ClusterCollection.Name)]
public sealed class ClusterEndpointTests(ClusterFixture fixture)
{
    [Fact]
    public async Task The_membership_is_admin_only()
    {
        using var anonymous = await fixture.Http.GetAsync("/api/admin/cluster");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal("unauthorized", (await anonymous.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("code").GetString());

        using var wrong = new HttpRequestMessage(HttpMethod.Get, "/api/admin/cluster");
        wrong.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "not-the-admin-token");
        using var forbidden = await fixture.Http.SendAsync(wrong);
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
    }

    [Fact]
    public async Task The_membership_lists_every_silo_of_the_cluster_as_active()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/admin/cluster");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", TestStack.AdminToken);
        using var response = await fixture.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();

        // The fixture's silos as Orleans itself reports them, compared with what the endpoint lists.
        var expected = fixture.Cluster.Silos.Select(s => s.SiloAddress.Endpoint.ToString()).Order().ToArray();
        var active = body.GetProperty("members").EnumerateArray()
            .Where(m => m.GetProperty("status").GetString() == "Active")
            .Select(m => m.GetProperty("endpoint").GetString()).Order().ToArray();
        Assert.Equal(expected, active);
        Assert.Equal(expected.Length, body.GetProperty("active").GetInt32());
    }
}
