namespace OrleansFlashSale.UnitTests;

/// <summary>The repository's root, found from the test's build output: the folder that holds the solution.</summary>
internal static class RepoRoot
{
    public static readonly string Path = Find();

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "OrleansFlashSale.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("OrleansFlashSale.sln not found above " + AppContext.BaseDirectory);
    }
}
