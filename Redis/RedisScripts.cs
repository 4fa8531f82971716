using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;

namespace OrleansFlashSale.Redis;

/// <summary>A Lua script with its SHA1, so calls go out as EVALSHA and only the first one per server sends the text.</summary>
public sealed class RedisScript
{
    public RedisScript(string name, string text)
    {
        Name = name;
        Text = text;
        Sha1 = SHA1.HashData(Encoding.UTF8.GetBytes(text));
    }

    public string Name { get; }

    public string Text { get; }

    public byte[] Sha1 { get; }
}

/// <summary>The project's scripts, loaded from the assembly, and the EVALSHA-with-fallback call.</summary>
public sealed class RedisScripts
{
    public RedisScripts()
    {
        Deduct = Load("deduct");
        Take = Load("take");
        Give = Load("give");
        Reserve = Load("reserve");
        Finalize = Load("finalize");
        Return = Load("return");
        Purchase = Load("purchase");
        Fence = Load("fence");
        Seal = Load("seal");
        Void = Load("void");
    }

    /// <summary>A replay's final word on whether an order was deducted in a bucket (and a ban on it if not).</summary>
    public RedisScript Void { get; }

    /// <summary>The common purchase: idempotency, limit, stock and log in the home bucket's slot.</summary>
    public RedisScript Purchase { get; }

    /// <summary>The check-back's final answer for a transaction (commit or a fenced rollback).</summary>
    public RedisScript Fence { get; }

    /// <summary>The check-back's final answer for a transaction of several batches (an epoch): rolled back, or closed.</summary>
    public RedisScript Seal { get; }

    public RedisScript Deduct { get; }

    public RedisScript Take { get; }

    public RedisScript Give { get; }

    public RedisScript Reserve { get; }

    public RedisScript Finalize { get; }

    public RedisScript Return { get; }

    /// <summary>
    /// EVALSHA, and on NOSCRIPT (a restarted or failed-over server has an empty script cache) EVAL, which also
    /// loads the script for the next call. The script runs at most once per call either way: NOSCRIPT means it
    /// did not run.
    /// </summary>
    public static async Task<RedisResult> EvaluateAsync(IDatabaseAsync db, RedisScript script, RedisKey[] keys, RedisValue[] args)
    {
        try
        {
            return await db.ScriptEvaluateAsync(script.Sha1, keys, args);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            return await db.ScriptEvaluateAsync(script.Text, keys, args);
        }
    }

    /// <summary>
    /// True when a failed script call certainly did not run: the server refused it while loading its data set, or the
    /// client never wrote it (it timed out in the multiplexer's backlog, or its connection failed before writing it).
    /// Any other failure (a timeout after sending, a connection lost while waiting for the answer, a script error)
    /// leaves open whether it ran.
    /// </summary>
    public static bool CertainlyNotRun(Exception failure) => failure switch
    {
        // The reply's prefix too, in case the client left the kind unknown.
        RedisServerException server => server.Kind == RedisErrorKind.Loading || server.Message.StartsWith("LOADING ", StringComparison.Ordinal),
        RedisConnectionException connection => Unsent(connection.CommandStatus),
        RedisTimeoutException timeout => Unsent(timeout.Commandstatus),
        _ => false,
    };

    private static bool Unsent(CommandStatus status) => status is CommandStatus.WaitingInBacklog or CommandStatus.WaitingToBeSent;

    private static RedisScript Load(string name)
    {
        var resource = $"OrleansFlashSale.Scripts.{name}.lua";
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"Embedded script {resource} is missing from the build.");
        using var reader = new StreamReader(stream);
        return new RedisScript(name, reader.ReadToEnd());
    }
}
