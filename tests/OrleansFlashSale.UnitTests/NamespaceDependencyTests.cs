using Mono.Cecil;
using Mono.Cecil.Cil;

namespace OrleansFlashSale.UnitTests;

/// <summary>
/// The layout read from the built assemblies (every <c>OrleansFlashSale.*</c> assembly beside this test, the tests
/// excepted): which assemblies reference which, and which namespaces use which. A namespace cycle would make two
/// folders one unit in all but name; a reference to a program would make a library unusable without it.
/// </summary>
public sealed class NamespaceDependencyTests
{
    private static readonly Lazy<ModuleDefinition[]> Modules = new(LoadModules);

    [Fact]
    public void No_namespace_of_ours_depends_on_itself_through_another()
    {
        var graph = NamespaceGraph.Build(Modules.Value);

        // The scan reads signatures and method bodies; a graph this small would mean it found nothing to read.
        Assert.True(graph.EdgeCount > 30, $"only {graph.EdgeCount} namespace dependencies found");

        var cycles = graph.Cycles()
            .Select(c => string.Join(", ", c.Order(StringComparer.Ordinal)) + ": " + string.Join("; ", graph.EdgesWithin(c)))
            .ToArray();
        Assert.True(cycles.Length == 0, "namespace cycles:\n" + string.Join("\n", cycles));
    }

    [Fact]
    public void The_contracts_reference_no_assembly_of_ours()
    {
        var contracts = Modules.Value.Single(m => m.Assembly.Name.Name == "OrleansFlashSale.Grains.Interfaces");
        Assert.Empty(contracts.AssemblyReferences.Where(r => r.Name.StartsWith("OrleansFlashSale", StringComparison.Ordinal)).Select(r => r.Name));
    }

    [Fact]
    public void No_assembly_references_a_program()
    {
        string[] programs = ["OrleansFlashSale.Silo", "OrleansFlashSale.Client", "OrleansFlashSale.Bench"];
        var offenders = Modules.Value
            .SelectMany(m => m.AssemblyReferences.Where(r => programs.Contains(r.Name)).Select(r => $"{m.Assembly.Name.Name} -> {r.Name}"))
            .ToArray();
        Assert.Empty(offenders);
    }

    [Fact]
    public void A_cycle_is_found_when_two_namespaces_use_each_other()
    {
        var graph = new NamespaceGraph();
        graph.Add("A", "B", "A.X uses B.Y");
        graph.Add("B", "C", "B.Y uses C.Z");
        graph.Add("C", "A", "C.Z uses A.X");
        graph.Add("C", "D", "C.Z uses D.W");

        var cycle = Assert.Single(graph.Cycles());
        Assert.Equal(["A", "B", "C"], cycle.Order(StringComparer.Ordinal));
        Assert.Equal(["A -> B (A.X uses B.Y)", "B -> C (B.Y uses C.Z)", "C -> A (C.Z uses A.X)"], graph.EdgesWithin(cycle));
    }

    private static ModuleDefinition[] LoadModules()
    {
        var resolver = new DefaultAssemblyResolver();
        resolver.AddSearchDirectory(AppContext.BaseDirectory);
        var modules = Directory.EnumerateFiles(AppContext.BaseDirectory, "OrleansFlashSale.*.dll")
            .Where(p => !Path.GetFileName(p).Contains("Tests", StringComparison.Ordinal))
            .Select(p => ModuleDefinition.ReadModule(p, new ReaderParameters { AssemblyResolver = resolver }))
            .ToArray();
        // The libraries and both hosts at least; fewer would mean the test looks at the wrong folder.
        Assert.True(modules.Length >= 8, $"only {modules.Length} assemblies of ours beside the test");
        return modules;
    }
}

/// <summary>Which namespace of ours uses which, with one example of each use for the failure message.</summary>
internal sealed class NamespaceGraph
{
    private const string Ours = "OrleansFlashSale";

    private readonly Dictionary<string, Dictionary<string, string>> _edges = new(StringComparer.Ordinal);

    public int EdgeCount => _edges.Values.Sum(e => e.Count);

    public void Add(string from, string to, string example)
    {
        if (from == to)
        {
            return;
        }

        if (!_edges.TryGetValue(from, out var targets))
        {
            _edges[from] = targets = new(StringComparer.Ordinal);
        }

        targets.TryAdd(to, example);
        _edges.TryAdd(to, new(StringComparer.Ordinal));
    }

    public IEnumerable<string> EdgesWithin(IReadOnlyCollection<string> component) =>
        component.Order(StringComparer.Ordinal)
            .SelectMany(from => _edges[from].Where(e => component.Contains(e.Key)).OrderBy(e => e.Key, StringComparer.Ordinal)
                .Select(e => $"{from} -> {e.Key} ({e.Value})"));

    /// <summary>Strongly connected components of more than one namespace (Tarjan).</summary>
    public List<List<string>> Cycles()
    {
        var index = new Dictionary<string, int>();
        var low = new Dictionary<string, int>();
        var stack = new Stack<string>();
        var onStack = new HashSet<string>();
        var result = new List<List<string>>();

        void Visit(string node)
        {
            index[node] = low[node] = index.Count;
            stack.Push(node);
            onStack.Add(node);
            foreach (var next in _edges[node].Keys)
            {
                if (!index.ContainsKey(next))
                {
                    Visit(next);
                    low[node] = Math.Min(low[node], low[next]);
                }
                else if (onStack.Contains(next))
                {
                    low[node] = Math.Min(low[node], index[next]);
                }
            }

            if (low[node] == index[node])
            {
                var component = new List<string>();
                string member;
                do
                {
                    member = stack.Pop();
                    onStack.Remove(member);
                    component.Add(member);
                }
                while (member != node);
                if (component.Count > 1)
                {
                    result.Add(component);
                }
            }
        }

        foreach (var node in _edges.Keys.Order(StringComparer.Ordinal).ToArray())
        {
            if (!index.ContainsKey(node))
            {
                Visit(node);
            }
        }

        return result;
    }

    public static NamespaceGraph Build(IEnumerable<ModuleDefinition> modules)
    {
        var graph = new NamespaceGraph();
        foreach (var type in modules.SelectMany(m => m.GetTypes()))
        {
            var from = NamespaceOf(type);
            if (!from.StartsWith(Ours, StringComparison.Ordinal))
            {
                continue;
            }

            foreach (var used in UsedTypes(type))
            {
                var to = NamespaceOf(used);
                if (to.StartsWith(Ours, StringComparison.Ordinal))
                {
                    graph.Add(from, to, $"{type.FullName} uses {used.FullName}");
                }
            }
        }

        return graph;
    }

    /// <summary>A nested type (compiler-made closures and state machines too) belongs to its outermost type's namespace.</summary>
    private static string NamespaceOf(TypeReference type)
    {
        while (type.DeclaringType is not null)
        {
            type = type.DeclaringType;
        }

        return type.Namespace;
    }

    private static IEnumerable<TypeReference> UsedTypes(TypeDefinition type)
    {
        var found = new List<TypeReference>();
        void Add(TypeReference? t)
        {
            switch (t)
            {
                case null or GenericParameter:
                    return;
                case GenericInstanceType generic:
                    Add(generic.ElementType);
                    generic.GenericArguments.ToList().ForEach(Add);
                    return;
                case TypeSpecification spec:
                    Add(spec.ElementType);
                    return;
                default:
                    found.Add(t);
                    return;
            }
        }

        void AddAttributes(ICustomAttributeProvider provider)
        {
            foreach (var attribute in provider.CustomAttributes)
            {
                Add(attribute.AttributeType);
                foreach (var argument in attribute.ConstructorArguments)
                {
                    Add(argument.Value as TypeReference);
                }
            }
        }

        void AddMethod(MethodReference method)
        {
            Add(method.DeclaringType);
            Add(method.ReturnType);
            method.Parameters.ToList().ForEach(p => Add(p.ParameterType));
            if (method is GenericInstanceMethod generic)
            {
                generic.GenericArguments.ToList().ForEach(Add);
            }
        }

        Add(type.BaseType);
        type.Interfaces.ToList().ForEach(i => Add(i.InterfaceType));
        AddAttributes(type);
        foreach (var field in type.Fields)
        {
            Add(field.FieldType);
            AddAttributes(field);
        }

        foreach (var property in type.Properties)
        {
            Add(property.PropertyType);
            AddAttributes(property);
        }

        foreach (var method in type.Methods)
        {
            AddMethod(method);
            AddAttributes(method);
            method.Parameters.ToList().ForEach(AddAttributes);
            if (!method.HasBody)
            {
                continue;
            }

            method.Body.Variables.ToList().ForEach(v => Add(v.VariableType));
            foreach (var instruction in method.Body.Instructions)
            {
                switch (instruction.Operand)
                {
                    case TypeReference t:
                        Add(t);
                        break;
                    case MethodReference m:
                        AddMethod(m);
                        break;
                    case FieldReference f:
                        Add(f.DeclaringType);
                        Add(f.FieldType);
                        break;
                }
            }
        }

        return found;
    }
}
