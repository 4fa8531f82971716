using System.Reflection;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OrleansFlashSale.Client.Api;
using OrleansFlashSale.Grains;
using OrleansFlashSale.Messaging;
using OrleansFlashSale.Persistence;
using OrleansFlashSale.Pipeline;
using OrleansFlashSale.Redis;
using OrleansFlashSale.Silo;
using OrleansFlashSale.ServiceDefaults;
using YamlDotNet.RepresentationModel;

namespace OrleansFlashSale.UnitTests;

/// <summary>
/// deploy/k8s and deploy/systemd read against the programs: every setting they pass exists in an options class,
/// ports and health paths are the ones the hosts use, and every reference (secret, config map, selector, probe
/// port) points at something that exists. No cluster needed.
/// </summary>
public sealed partial class DeployManifestTests
{
    private static readonly Dictionary<string, Type> OptionSections = new[]
    {
        (FlashSaleSiloOptions.Section, typeof(FlashSaleSiloOptions)),
        (FlashSaleMySqlOptions.Section, typeof(FlashSaleMySqlOptions)),
        (GatewayOptions.Section, typeof(GatewayOptions)),
        (AuthOptions.Section, typeof(AuthOptions)),
        (FlashSaleRedisOptions.Section, typeof(FlashSaleRedisOptions)),
        (JetStreamOptions.Section, typeof(JetStreamOptions)),
        (OrderStoreOptions.Section, typeof(OrderStoreOptions)),
        (DeductionOptions.Section, typeof(DeductionOptions)),
        (OrderExpiryOptions.Section, typeof(OrderExpiryOptions)),
        (TelemetryOptions.Section, typeof(TelemetryOptions)),
    }.ToDictionary(p => p.Item1, p => p.Item2);

    private static readonly string Root = RepoRoot.Path;

    private static readonly List<YamlMappingNode> Objects = LoadManifests();

    [Fact]
    public void Every_object_of_a_two_tier_deployment_is_there()
    {
        Assert.Equal(
            ["ConfigMap flashsale-config", "Deployment flashsale-gateway", "Deployment flashsale-silo", "NetworkPolicy flashsale-gateway",
             "NetworkPolicy flashsale-silo", "PodDisruptionBudget flashsale-gateway", "PodDisruptionBudget flashsale-silo",
             "Secret flashsale-secrets", "Service flashsale-gateway", "Service flashsale-silo"],
            Objects.Select(o => $"{S(o, "kind")} {S(o, "metadata", "name")}").Order(StringComparer.Ordinal));
        var kustomization = Load(Path.Combine(Root, "deploy", "k8s", "kustomization.yaml")).Single();
        Assert.Equal(Directory.GetFiles(Path.Combine(Root, "deploy", "k8s"), "*.yaml").Select(Path.GetFileName).Where(f => f != "kustomization.yaml").Order(),
            Seq(kustomization, "resources").Select(n => ((YamlScalarNode)n).Value!).Order());
    }

    [Theory]
    [InlineData("flashsale-silo", "OrleansFlashSale.Silo.dll", FlashSaleSiloOptions.Section, "Silo/appsettings.json")]
    [InlineData("flashsale-gateway", "OrleansFlashSale.Client.dll", GatewayOptions.Section, "Client/appsettings.json")]
    public void A_deployment_takes_its_identity_from_labels_and_probes_the_health_endpoints(string name, string dll, string identitySection, string appsettings)
    {
        var deployment = Find("Deployment", name);
        var template = M(deployment, "spec", "template");
        var labels = Labels(M(template, "metadata", "labels"));
        Assert.True(IsSubset(Labels(M(deployment, "spec", "selector", "matchLabels")), labels), "the selector must match the pod labels");
        var container = Assert.Single(Seq(M(template, "spec"), "containers").Cast<YamlMappingNode>());
        Assert.False(string.IsNullOrWhiteSpace(S(container, "image")));
        Assert.EndsWith(dll, Seq(container, "command").Cast<YamlScalarNode>().Last().Value, StringComparison.Ordinal);

        // Cluster and service ids: env from the pod's own labels, under the section the program binds.
        var env = Env(container);
        var envPrefix = identitySection.Replace(":", "__", StringComparison.Ordinal) + "__";
        foreach (var (setting, label) in new[] { ("ClusterId", "orleans/clusterId"), ("ServiceId", "orleans/serviceId") })
        {
            Assert.True(labels.ContainsKey(label), $"{name}: pod label {label} missing");
            Assert.Equal($"metadata.labels['{label}']", S(env[envPrefix + setting], "valueFrom", "fieldRef", "fieldPath"));
        }

        // The HTTP port: Urls listens on it, the container exposes it, both probes use it.
        var ports = Seq(container, "ports").Cast<YamlMappingNode>().ToDictionary(p => S(p, "name"), p => int.Parse(S(p, "containerPort"), System.Globalization.CultureInfo.InvariantCulture));
        var urls = new Uri(S(env["Urls"], "value"));
        Assert.Equal("0.0.0.0", urls.Host);
        Assert.Equal(ports["http"], urls.Port);
        // The same port the program listens on by default (appsettings.json), so local and cluster docs agree.
        using var defaults = JsonDocument.Parse(File.ReadAllText(Path.Combine(Root, appsettings)));
        Assert.Equal(new Uri(defaults.RootElement.GetProperty("Urls").GetString()!).Port, urls.Port);
        foreach (var (probe, path) in new[] { ("readinessProbe", "/health/ready"), ("livenessProbe", "/health/live") })
        {
            Assert.Equal(path, S(container, probe, "httpGet", "path"));
            Assert.Equal("http", S(container, probe, "httpGet", "port"));
        }

        foreach (var kind in new[] { "requests", "limits" })
        {
            Assert.False(string.IsNullOrWhiteSpace(S(container, "resources", kind, "cpu")), $"{name}: resources.{kind}.cpu");
            Assert.False(string.IsNullOrWhiteSpace(S(container, "resources", kind, "memory")), $"{name}: resources.{kind}.memory");
        }

        // A disruption budget and a service select these pods; the service's target port exists.
        var pdb = Find("PodDisruptionBudget", name);
        Assert.True(IsSubset(Labels(M(pdb, "spec", "selector", "matchLabels")), labels));
        Assert.True(M(pdb, "spec").Children.ContainsKey("maxUnavailable") || M(pdb, "spec").Children.ContainsKey("minAvailable"));
        var service = Find("Service", name);
        Assert.True(IsSubset(Labels(M(service, "spec", "selector")), labels));
        Assert.All(Seq(M(service, "spec"), "ports").Cast<YamlMappingNode>(), p => Assert.Contains(S(p, "targetPort"), ports.Keys));
    }

    [Fact]
    public void The_silo_exposes_the_orleans_ports_it_is_configured_with()
    {
        var container = (YamlMappingNode)Seq(M(Find("Deployment", "flashsale-silo"), "spec", "template", "spec"), "containers")[0];
        var env = Env(container);
        var ports = Seq(container, "ports").Cast<YamlMappingNode>().ToDictionary(p => S(p, "name"), p => S(p, "containerPort"));
        var defaults = new FlashSaleSiloOptions();
        Assert.Equal(defaults.SiloPort.ToString(System.Globalization.CultureInfo.InvariantCulture), ports["silo"]);
        Assert.Equal(defaults.GatewayPort.ToString(System.Globalization.CultureInfo.InvariantCulture), ports["gateway"]);
        Assert.Equal(ports["silo"], S(env["FlashSale__Silo__SiloPort"], "value"));
        Assert.Equal(ports["gateway"], S(env["FlashSale__Silo__GatewayPort"], "value"));
        // Other silos and gateways reach this one at the pod's own address.
        Assert.Equal("status.podIP", S(env["FlashSale__Silo__AdvertisedAddress"], "valueFrom", "fieldRef", "fieldPath"));
    }

    [Fact]
    public void Every_setting_passed_exists_and_every_reference_resolves()
    {
        var configMap = Find("ConfigMap", "flashsale-config");
        var secret = Find("Secret", "flashsale-secrets");
        var configKeys = M(configMap, "data").Children.Keys.Select(k => ((YamlScalarNode)k).Value!).ToHashSet();
        var secretKeys = M(secret, "stringData").Children.Keys.Select(k => ((YamlScalarNode)k).Value!).ToHashSet();
        foreach (var key in configKeys.Concat(secretKeys))
        {
            AssertKnownSetting(key, "ConfigMap/Secret key");
        }

        foreach (var deployment in Objects.Where(o => S(o, "kind") == "Deployment"))
        {
            var container = (YamlMappingNode)Seq(M(deployment, "spec", "template", "spec"), "containers")[0];
            foreach (var (envName, entry) in Env(container))
            {
                AssertKnownSetting(envName, S(deployment, "metadata", "name"));
                if (TryM(entry, "valueFrom", "secretKeyRef") is { } secretRef)
                {
                    Assert.Equal("flashsale-secrets", S(secretRef, "name"));
                    Assert.Contains(S(secretRef, "key"), secretKeys);
                }

                if (TryM(entry, "valueFrom", "configMapKeyRef") is { } configRef)
                {
                    Assert.Equal("flashsale-config", S(configRef, "name"));
                    Assert.Contains(S(configRef, "key"), configKeys);
                }
            }

            foreach (var source in container.Children.TryGetValue("envFrom", out var envFrom) ? ((YamlSequenceNode)envFrom).Cast<YamlMappingNode>() : [])
            {
                Assert.Equal("flashsale-config", S(source, "configMapRef", "name"));
            }
        }

        // Secrets in the repository are placeholders only.
        Assert.All(M(secret, "stringData").Children.Values, v => Assert.Contains("REPLACE-ME", ((YamlScalarNode)v).Value!, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("flashsale-silo.service", "OrleansFlashSale.Silo.dll", "silo.env.example", "Silo/appsettings.json")]
    [InlineData("flashsale-gateway.service", "OrleansFlashSale.Client.dll", "gateway.env.example", "Client/appsettings.json")]
    public void Systemd_units_run_the_program_with_known_settings(string unit, string dll, string envExample, string appsettings)
    {
        var lines = File.ReadAllLines(Path.Combine(Root, "deploy", "systemd", unit));
        string Value(string key) => Assert.Single(lines, l => l.StartsWith(key + "=", StringComparison.Ordinal))[(key.Length + 1)..];
        Assert.EndsWith(dll, Value("ExecStart"), StringComparison.Ordinal);
        Assert.StartsWith("/etc/flashsale/", Value("EnvironmentFile"), StringComparison.Ordinal);
        Assert.Equal("on-failure", Value("Restart"));
        Assert.Equal("flashsale", Value("User"));

        var settings = EnvExample(envExample, commentedOut: true);
        Assert.All(settings.Keys, k => AssertKnownSetting(k, envExample));
        using var defaults = JsonDocument.Parse(File.ReadAllText(Path.Combine(Root, appsettings)));
        Assert.Equal(new Uri(defaults.RootElement.GetProperty("Urls").GetString()!).Port, new Uri(settings["Urls"]).Port);
    }

    /// <summary>The settings of a systemd environment file example; with <paramref name="commentedOut"/> also those behind a '#'.</summary>
    private static Dictionary<string, string> EnvExample(string file, bool commentedOut = false) =>
        File.ReadAllLines(Path.Combine(Root, "deploy", "systemd", file))
            .Select(l => commentedOut ? l.TrimStart('#') : l)
            .Where(l => !l.StartsWith('#') && l.Contains('=', StringComparison.Ordinal) && !l.StartsWith(' '))
            .ToDictionary(l => l[..l.IndexOf('=', StringComparison.Ordinal)], l => l[(l.IndexOf('=', StringComparison.Ordinal) + 1)..]);

    /// <summary><c>FlashSale__A__B</c> must name property B of the options class bound to section <c>FlashSale:A</c>.</summary>
    private static void AssertKnownSetting(string name, string where)
    {
        if (name is "Urls" || name.StartsWith("DOTNET_", StringComparison.Ordinal) || name.StartsWith("OTEL_", StringComparison.Ordinal))
        {
            return;
        }

        var parts = name.Split("__");
        Assert.True(parts.Length == 3 && parts[0] == "FlashSale", $"{where}: {name} is not a FlashSale__Section__Setting variable");
        var section = $"{parts[0]}:{parts[1]}";
        Assert.True(OptionSections.TryGetValue(section, out var type), $"{where}: {name}: no options class binds {section}");
        Assert.True(type!.GetProperty(parts[2], BindingFlags.Public | BindingFlags.Instance) is { CanWrite: true },
            $"{where}: {name}: {type.Name} has no setting {parts[2]}");
    }

    private static YamlMappingNode Find(string kind, string name) =>
        Assert.Single(Objects, o => S(o, "kind") == kind && S(o, "metadata", "name") == name);

    private static Dictionary<string, YamlMappingNode> Env(YamlMappingNode container) =>
        Seq(container, "env").Cast<YamlMappingNode>().ToDictionary(e => S(e, "name"));

    private static Dictionary<string, string> Labels(YamlMappingNode node) =>
        node.Children.ToDictionary(p => ((YamlScalarNode)p.Key).Value!, p => ((YamlScalarNode)p.Value).Value!);

    private static bool IsSubset(Dictionary<string, string> subset, Dictionary<string, string> of) =>
        subset.Count > 0 && subset.All(p => of.TryGetValue(p.Key, out var v) && v == p.Value);

    private static YamlMappingNode? TryM(YamlMappingNode node, params string[] path)
    {
        foreach (var key in path)
        {
            if (!node.Children.TryGetValue(key, out var child) || child is not YamlMappingNode map)
            {
                return null;
            }

            node = map;
        }

        return node;
    }

    private static YamlMappingNode M(YamlMappingNode node, params string[] path) =>
        TryM(node, path) ?? throw new Xunit.Sdk.XunitException($"missing mapping {string.Join('.', path)}");

    private static YamlSequenceNode Seq(YamlMappingNode node, string key) =>
        node.Children.TryGetValue(key, out var child) && child is YamlSequenceNode sequence
            ? sequence
            : throw new Xunit.Sdk.XunitException($"missing list {key}");

    private static string S(YamlMappingNode node, params string[] path)
    {
        var parent = path.Length > 1 ? M(node, path[..^1]) : node;
        return parent.Children.TryGetValue(path[^1], out var value) && value is YamlScalarNode scalar
            ? scalar.Value ?? ""
            : throw new Xunit.Sdk.XunitException($"missing value {string.Join('.', path)}");
    }

    private static List<YamlMappingNode> LoadManifests() => Directory.GetFiles(Path.Combine(Root, "deploy", "k8s"), "*.yaml")
        .Where(f => Path.GetFileName(f) != "kustomization.yaml")
        .SelectMany(Load)
        .ToList();

    private static IEnumerable<YamlMappingNode> Load(string file)
    {
        var stream = new YamlStream();
        using var reader = new StreamReader(file);
        stream.Load(reader);
        return stream.Documents.Select(d => (YamlMappingNode)d.RootNode);
    }
}

public sealed class TelemetryOptionsTests
{
    [Theory]
    [InlineData(null, "grpc", null)]
    [InlineData("http://collector:4317", "grpc", null)]
    [InlineData("https://collector:4318", "http/protobuf", null)]
    [InlineData("collector:4317", "grpc", "FlashSale:Telemetry:OtlpEndpoint must be an absolute http or https URL")]
    [InlineData("ftp://collector", "grpc", "FlashSale:Telemetry:OtlpEndpoint must be an absolute http or https URL")]
    [InlineData("http://collector:4317", "udp", "FlashSale:Telemetry:OtlpProtocol must be grpc or http/protobuf")]
    public void A_bad_telemetry_setting_is_named(string? endpoint, string protocol, string? error)
    {
        var result = new TelemetryOptionsValidator().Validate(null, new TelemetryOptions { OtlpEndpoint = endpoint, OtlpProtocol = protocol });
        if (error is null)
        {
            Assert.True(result.Succeeded, result.FailureMessage);
        }
        else
        {
            Assert.True(result.Failed);
            Assert.Contains(error, result.FailureMessage, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("auto", 1.0, null)]
    [InlineData("on", 0.0, null)]
    [InlineData("off", 0.25, null)]
    [InlineData("always", 1.0, "FlashSale:Telemetry:Traces must be auto, on or off")]
    [InlineData("on", 1.5, "FlashSale:Telemetry:TraceSampleRatio must be between 0 and 1")]
    [InlineData("on", -0.1, "FlashSale:Telemetry:TraceSampleRatio must be between 0 and 1")]
    [InlineData("on", double.NaN, "FlashSale:Telemetry:TraceSampleRatio must be between 0 and 1")]
    public void A_bad_tracing_setting_is_named(string traces, double ratio, string? error)
    {
        var result = new TelemetryOptionsValidator().Validate(null, new TelemetryOptions { Traces = traces, TraceSampleRatio = ratio });
        Assert.Equal(error is null, result.Succeeded);
        if (error is not null)
        {
            Assert.Contains(error, result.FailureMessage, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData(null, null, false)]
    [InlineData("auto", null, false)]
    [InlineData("auto", "http://127.0.0.1:4317", true)]
    [InlineData("on", null, true)]
    [InlineData("off", "http://127.0.0.1:4317", false)]
    public void Traces_are_recorded_only_when_they_have_somewhere_to_go(string? traces, string? endpoint, bool recorded)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["FlashSale:Telemetry:Traces"] = traces,
            ["FlashSale:Telemetry:OtlpEndpoint"] = endpoint,
        }).Build();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddFlashSaleTelemetry(configuration, "flashsale-test");
        using var provider = services.BuildServiceProvider();
        // Resolving the provider is what starts it listening, as the host does at start.
        _ = provider.GetService<OpenTelemetry.Trace.TracerProvider>();
        using var source = new System.Diagnostics.ActivitySource(TelemetryExtensions.OrleansSources[0]);
        using var span = source.StartActivity("probe");
        Assert.Equal(recorded, span is not null);
    }
}
