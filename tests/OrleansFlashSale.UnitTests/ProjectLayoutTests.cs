using System.Xml.Linq;

namespace OrleansFlashSale.UnitTests;

/// <summary>
/// The project references that keep the layout honest, read from the project files: the contracts depend on
/// nothing of ours, and no project depends on the programs (the silo host, the gateway and its tools).
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
    public void No_project_but_the_tests_references_the_silo_or_the_gateway()
    {
        var programs = new[] { "Silo.csproj", "Client.csproj" };
        var offenders = Directory.EnumerateFiles(Root, "*.csproj", SearchOption.AllDirectories)
            .Where(p => !IsBuildOutput(p) && !Path.GetRelativePath(Root, p).StartsWith("tests", StringComparison.Ordinal))
            .SelectMany(p => References(XDocument.Load(p), "ProjectReference")
                .Where(r => programs.Contains(Path.GetFileName(r.Replace('\\', '/'))))
                .Select(r => $"{Path.GetRelativePath(Root, p)} -> {r}"))
            .ToArray();
        Assert.Empty(offenders);
    }

    private static XDocument Load(string relative) => XDocument.Load(Path.Combine(Root, relative));

    private static string[] References(XDocument project, string kind) =>
        [.. project.Descendants(kind).Select(e => (string?)e.Attribute("Include") ?? "").Order(StringComparer.Ordinal)];

    private static bool IsBuildOutput(string path) =>
        path.Split(Path.DirectorySeparatorChar).Any(part => part is "bin" or "obj");
}
