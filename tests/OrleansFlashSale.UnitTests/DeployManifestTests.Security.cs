using Microsoft.Extensions.Configuration;
using OrleansFlashSale.Client.Api;
using OrleansFlashSale.Messaging;
using YamlDotNet.RepresentationModel;

namespace OrleansFlashSale.UnitTests;

/// <summary>
/// The manifests' security: network policies around the Orleans ports, NATS credentials for the silos, buyer
/// authentication for the gateways, each read against what the programs validate.
/// </summary>
public sealed partial class DeployManifestTests
{
    /// <summary>
    /// Orleans does not authenticate callers, and grain methods change stock: the silo port is for silos only, the
    /// Orleans gateway port for the HTTP gateways only; the HTTP ports (API, health, /metrics) stay open.
    /// </summary>
    [Fact]
    public void Network_policies_keep_the_orleans_ports_to_the_cluster_and_leave_the_http_ports_open()
    {
        var silo = PodLabels("flashsale-silo");
        var gateway = PodLabels("flashsale-gateway");
        Assert.Equal(new Dictionary<string, string[]?>
        {
            ["silo"] = ["flashsale-silo"],
            ["gateway"] = ["flashsale-gateway"],
            ["http"] = null,
        }, IngressByPort(Find("NetworkPolicy", "flashsale-silo"), "flashsale-silo", [silo, gateway]));
        Assert.Equal(new Dictionary<string, string[]?> { ["http"] = null }, IngressByPort(Find("NetworkPolicy", "flashsale-gateway"), "flashsale-gateway", [silo, gateway]));
    }

    /// <summary>
    /// Each named container port of the deployment's pods, with the deployments whose pods may reach it (null: anyone).
    /// Fails on anything this reading cannot judge (a rule for every port, IP blocks, other namespaces, expressions).
    /// </summary>
    private static Dictionary<string, string[]?> IngressByPort(YamlMappingNode policy, string deployment, Dictionary<string, string>[] known)
    {
        var labels = PodLabels(deployment);
        Assert.True(IsSubset(Labels(M(policy, "spec", "podSelector", "matchLabels")), labels), $"{S(policy, "metadata", "name")} must select the {deployment} pods");
        Assert.Contains("Ingress", Seq(M(policy, "spec"), "policyTypes").Cast<YamlScalarNode>().Select(n => n.Value));
        var containerPorts = Seq((YamlMappingNode)Seq(M(Find("Deployment", deployment), "spec", "template", "spec"), "containers")[0], "ports")
            .Cast<YamlMappingNode>().Select(p => S(p, "name")).ToHashSet();
        var allowed = new Dictionary<string, string[]?>();
        foreach (var rule in Seq(M(policy, "spec"), "ingress").Cast<YamlMappingNode>())
        {
            string[]? sources = null;
            if (rule.Children.ContainsKey("from"))
            {
                sources = Seq(rule, "from").Cast<YamlMappingNode>().Select(peer =>
                {
                    Assert.Equal(["podSelector"], peer.Children.Keys.Select(k => ((YamlScalarNode)k).Value));
                    var selector = Labels(M(peer, "podSelector", "matchLabels"));
                    var matches = known.Where(pods => IsSubset(selector, pods)).Select(pods => pods["app.kubernetes.io/name"]).ToArray();
                    return Assert.Single(matches);
                }).Order(StringComparer.Ordinal).ToArray();
            }

            foreach (var port in Seq(rule, "ports").Cast<YamlMappingNode>().Select(p => S(p, "port")))
            {
                Assert.Contains(port, containerPorts);
                Assert.False(allowed.ContainsKey(port), $"port {port} has two rules");
                allowed[port] = sources;
            }
        }

        Assert.Equal(containerPorts.Order(StringComparer.Ordinal), allowed.Keys.Order(StringComparer.Ordinal));
        return allowed;
    }

    private static Dictionary<string, string> PodLabels(string deployment) => Labels(M(Find("Deployment", deployment), "spec", "template", "metadata", "labels"));

    /// <summary>
    /// The silo connects to NATS with a user (config map) and a password (secret), which is what its validation
    /// requires; without the password it would stop at start naming it. Same for the systemd example.
    /// </summary>
    [Fact]
    public void The_silo_authenticates_to_nats_with_a_password_from_the_secret()
    {
        var silo = (YamlMappingNode)Seq(M(Find("Deployment", "flashsale-silo"), "spec", "template", "spec"), "containers")[0];
        Assert.Equal("FlashSale__Nats__Password", S(Env(silo)["FlashSale__Nats__Password"], "valueFrom", "secretKeyRef", "key"));
        var settings = Settings(silo);
        Assert.Equal("flashsale", settings["FlashSale:Nats:User"]);
        Assert.True(ValidateNats(settings).Succeeded, ValidateNats(settings).FailureMessage);
        settings.Remove("FlashSale:Nats:Password");
        Assert.Equal(["FlashSale:Nats:Password is required when FlashSale:Nats:User is set."], ValidateNats(settings).Failures);

        var systemd = EnvExample("silo.env.example").ToDictionary(p => p.Key.Replace("__", ":", StringComparison.Ordinal), p => (string?)p.Value);
        Assert.True(ValidateNats(systemd).Succeeded, ValidateNats(systemd).FailureMessage);
    }

    /// <summary>The gateways pass the Production guard of FlashSale:Auth by authenticating buyers, not by being allowed mode none.</summary>
    [Fact]
    public void The_gateways_run_buyer_auth_in_jwt_mode()
    {
        var gateway = (YamlMappingNode)Seq(M(Find("Deployment", "flashsale-gateway"), "spec", "template", "spec"), "containers")[0];
        Assert.Equal("FlashSale__Auth__SigningKey", S(Env(gateway)["FlashSale__Auth__SigningKey"], "valueFrom", "secretKeyRef", "key"));
        var systemd = EnvExample("gateway.env.example").ToDictionary(p => p.Key.Replace("__", ":", StringComparison.Ordinal), p => (string?)p.Value);
        foreach (var settings in new[] { Settings(gateway), systemd })
        {
            Assert.Equal("jwt", settings["FlashSale:Auth:Mode"]);
            Assert.False(settings.ContainsKey("FlashSale:Auth:AllowNoneInProduction"));
            var options = new ConfigurationBuilder().AddInMemoryCollection(settings).Build().GetSection(AuthOptions.Section).Get<AuthOptions>()!;
            var result = new AuthOptionsValidator(new ProductionEnvironment()).Validate(null, options);
            Assert.True(result.Succeeded, result.FailureMessage);
        }
    }

    private sealed class ProductionEnvironment : Microsoft.Extensions.Hosting.IHostEnvironment
    {
        public string EnvironmentName { get; set; } = Microsoft.Extensions.Hosting.Environments.Production;

        public string ApplicationName { get; set; } = "flashsale-gateway";

        public string ContentRootPath { get; set; } = AppContext.BaseDirectory;

        public Microsoft.Extensions.FileProviders.IFileProvider ContentRootFileProvider { get; set; } = new Microsoft.Extensions.FileProviders.NullFileProvider();
    }

    private static Microsoft.Extensions.Options.ValidateOptionsResult ValidateNats(Dictionary<string, string?> settings)
    {
        var options = new ConfigurationBuilder().AddInMemoryCollection(settings).Build().GetSection(JetStreamOptions.Section).Get<JetStreamOptions>()!;
        return new JetStreamOptionsValidator().Validate(null, options);
    }

    /// <summary>The settings a container gets (config map through envFrom, then its env), secrets read from the secret's placeholders.</summary>
    private static Dictionary<string, string?> Settings(YamlMappingNode container)
    {
        var configMap = M(Find("ConfigMap", "flashsale-config"), "data");
        var secret = M(Find("Secret", "flashsale-secrets"), "stringData");
        var env = new Dictionary<string, string?>();
        if (container.Children.ContainsKey("envFrom"))
        {
            foreach (var (key, value) in configMap.Children)
            {
                env[((YamlScalarNode)key).Value!] = ((YamlScalarNode)value).Value;
            }
        }

        foreach (var (name, entry) in Env(container))
        {
            env[name] = TryM(entry, "valueFrom", "secretKeyRef") is { } secretRef ? S(secret, S(secretRef, "key"))
                : TryM(entry, "valueFrom", "configMapKeyRef") is { } configRef ? S(configMap, S(configRef, "key"))
                : TryM(entry, "valueFrom") is not null ? "(from the pod)"
                : S(entry, "value");
        }

        return env.ToDictionary(p => p.Key.Replace("__", ":", StringComparison.Ordinal), p => p.Value);
    }
}
