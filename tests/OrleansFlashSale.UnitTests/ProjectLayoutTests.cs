using System.Text.Json;
using System.Xml.Linq;

namespace OrleansFlashSale.UnitTests;

/// <summary>
/// The project references that keep the layout honest, read from the project files: the contracts depend on
/// nothing of ours, no project depends on the programs (the silo host, the gateway, the bench), the gateway carries
/// no MySQL or NATS driver and the command-line tools no grains.
/// </summary>
public sealed class ProjectLayoutTests
{
    private static readonly string Root = RepoRoot.Path;

    [Fact]
    public void Grains_Interfaces_references_no_project_of_ours_and_only_the_Orleans_SDK()
    {
        var project = Load("Grains.Interfaces/Grains.Interfaces.csproj");
        Assert.Empty(References(project, "ProjectReference"));
        Assert.Equal(["Microsoft.Orleans.Sdk"], References(project, "PackageReference"));
    }

    [Fact]
    public void No_project_but_the_tests_references_the_silo_the_gateway_or_the_bench()
    {
        var programs = new[] { "Silo.csproj", "Client.csproj", "Bench.csproj" };
        var offenders = Directory.EnumerateFiles(Root, "*.csproj", SearchOption.AllDirectories)
            .Where(p => !IsBuildOutput(p) && !Path.GetRelativePath(Root, p).StartsWith("tests", StringComparison.Ordinal))
            .SelectMany(p => References(XDocument.Load(p), "ProjectReference")
                .Where(r => programs.Contains(Path.GetFileName(r.Replace('\\', '/'))))
                .Select(r => $"{Path.GetRelativePath(Root, p)} -> {r}"))
            .ToArray();
        Assert.Empty(offenders);
    }

    [Fact]
    public void The_gateway_references_neither_the_grains_nor_a_project_with_a_MySQL_or_NATS_driver()
    {
        var closure = Closure("Client/Client.csproj");
        Assert.Contains("Grains.Interfaces/Grains.Interfaces.csproj", closure);
        Assert.DoesNotContain("Grains/Grains.csproj", closure);
        Assert.Empty(StoreDrivers(closure));
        // The scan finds the drivers where they are: the bench measures the real store code.
        Assert.NotEmpty(StoreDrivers(Closure("Bench/Bench.csproj")));
    }

    [Fact]
    public void The_command_line_tools_reference_neither_the_grains_nor_the_gateway_nor_a_MySQL_or_NATS_driver()
    {
        var closure = Closure("Cli/Cli.csproj");
        Assert.Contains("Grains.Interfaces/Grains.Interfaces.csproj", closure);
        Assert.DoesNotContain("Grains/Grains.csproj", closure);
        Assert.DoesNotContain("Client/Client.csproj", closure);
        Assert.Empty(StoreDrivers(closure));
    }

    [Theory]
    [InlineData("Client/Client.csproj")]
    [InlineData("Cli/Cli.csproj")]
    [InlineData("ClientLibrary/ClientLibrary.csproj")]
    public void Only_the_silo_and_the_bench_reach_the_storage_transport_and_pipeline_projects(string program)
    {
        string[] serverSide = ["Redis/Redis.csproj", "Messaging/Messaging.csproj", "Persistence/Persistence.csproj", "Pipeline/Pipeline.csproj", "Grains/Grains.csproj"];
        Assert.Empty(Closure(program).Intersect(serverSide));
        // The same scan sees them where they are referenced.
        Assert.Equal(["Persistence/Persistence.csproj", "Redis/Redis.csproj"], Closure("Bench/Bench.csproj").Intersect(serverSide).Order(StringComparer.Ordinal));
        Assert.Equal(serverSide.Order(StringComparer.Ordinal), Closure("Silo/Silo.csproj").Intersect(serverSide).Order(StringComparer.Ordinal));
    }

    /// <summary>
    /// What the gateway build ships, from its deps.json (built with this test project): a package that brought a
    /// driver along would show here though no project file names it.
    /// </summary>
    [Fact]
    public void The_gateway_build_ships_no_MySQL_or_NATS_driver_and_no_grains()
    {
        // This test's output is tests/<project>/bin/<configuration>/<framework>/; the gateway's has the same last two.
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var deps = Path.Combine(Root, "Client", "bin", output.Parent!.Name, output.Name, "OrleansFlashSale.Client.deps.json");
        using var document = JsonDocument.Parse(File.ReadAllText(deps));
        var libraries = document.RootElement.GetProperty("libraries").EnumerateObject().Select(l => l.Name.Split('/')[0]).ToArray();
        Assert.Contains("OrleansFlashSale.ClientLibrary", libraries);
        Assert.DoesNotContain(libraries, l => IsStoreDriver(l) || l == "OrleansFlashSale.Grains");
    }

    private static bool IsStoreDriver(string package) =>
        package.StartsWith("MySql", StringComparison.OrdinalIgnoreCase) || package.StartsWith("NATS.", StringComparison.OrdinalIgnoreCase);

    /// <summary>"project -> package" for every MySQL or NATS package the given projects reference.</summary>
    private static string[] StoreDrivers(IEnumerable<string> projects) =>
        [.. projects.SelectMany(p => References(Load(p), "PackageReference").Where(IsStoreDriver).Select(r => $"{p} -> {r}"))];

    /// <summary>The project and every project it references, directly or not, relative to the root with '/'.</summary>
    private static List<string> Closure(string project)
    {
        var found = new List<string>();
        var next = new Queue<string>([project]);
        while (next.TryDequeue(out var current))
        {
            if (found.Contains(current))
            {
                continue;
            }

            found.Add(current);
            var directory = Path.GetDirectoryName(Path.Combine(Root, current))!;
            foreach (var reference in References(Load(current), "ProjectReference"))
            {
                var path = Path.GetFullPath(Path.Combine(directory, reference.Replace('\\', '/')));
                next.Enqueue(Path.GetRelativePath(Root, path).Replace('\\', '/'));
            }
        }

        return found;
    }

    /// <summary>
    /// The store's SQL lives in <c>Persistence/</c> (and the bench's baselines, written the obvious way on purpose, in
    /// <c>Bench/</c>): a statement in any other project means a second place that must follow a schema change.
    /// </summary>
    [Fact]
    public void No_project_but_the_store_and_the_bench_writes_SQL()
    {
        var statement = new System.Text.RegularExpressions.Regex(
            @"""[^""]*\b(SELECT\s+\S+.*\bFROM|INSERT\s+(IGNORE\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b");
        string[] projects = ["Grains", "Grains.Interfaces", "Redis", "Messaging", "Pipeline", "Silo", "ServiceDefaults", "Client", "Cli", "ClientLibrary"];
        var offenders = projects
            .SelectMany(p => Directory.EnumerateFiles(Path.Combine(Root, p), "*.cs", SearchOption.AllDirectories))
            .Where(f => !IsBuildOutput(f))
            .SelectMany(f => File.ReadLines(f).Select((line, n) => (File: f, Line: n + 1, Text: line)))
            .Where(l => statement.IsMatch(l.Text) && !l.Text.TrimStart().StartsWith("//", StringComparison.Ordinal))
            .Select(l => $"{Path.GetRelativePath(Root, l.File)}:{l.Line}")
            .ToArray();
        Assert.Empty(offenders);
        // The same scan finds the statements where they are.
        Assert.Contains(Directory.EnumerateFiles(Path.Combine(Root, "Persistence"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !IsBuildOutput(f)).SelectMany(File.ReadLines), l => statement.IsMatch(l));
    }

    private static XDocument Load(string relative) => XDocument.Load(Path.Combine(Root, relative));

    private static string[] References(XDocument project, string kind) =>
        [.. project.Descendants(kind).Select(e => (string?)e.Attribute("Include") ?? "").Order(StringComparer.Ordinal)];

    private static bool IsBuildOutput(string path) =>
        path.Split(Path.DirectorySeparatorChar).Any(part => part is "bin" or "obj");
}
