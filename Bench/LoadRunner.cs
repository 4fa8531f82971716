using System.Diagnostics;

namespace OrleansFlashSale.Bench;

/// <summary>
/// Closed-loop load: <c>workers</c> loops each start an operation only when their previous one has finished. Runs a
/// warm-up (at least <see cref="BenchSettings.Warmup"/>, then on until the stack's JIT settles:
/// <see cref="RuntimeWarmth"/>), then a measured window, then stops starting operations and waits for those in flight.
/// </summary>
public static class LoadRunner
{
    /// <summary>What one run did. <see cref="Measured"/> counts the successes that completed inside the window.</summary>
    public sealed record Outcome(long Started, long Succeeded, long Measured, TimeSpan Window, IReadOnlyDictionary<string, TimeSpan> Cpu,
        DateTimeOffset WindowStart, DateTimeOffset WindowEnd, IReadOnlyDictionary<string, string>? Calls = null,
        RuntimeWarmth.Result? Warmth = null)
    {
        /// <summary>CPU per counted operation of each process of the stack over the window (see <see cref="StackCpu"/>).</summary>
        public IEnumerable<KeyValuePair<string, string>> CpuDetails => StackCpu.PerOperation(Cpu, Measured);

        /// <summary>The counted run, with <paramref name="details"/> and the CPU per operation.</summary>
        public BenchRun ToRun(IReadOnlyDictionary<string, string> details) =>
            new(Measured, Window, details.Concat(CpuDetails).Concat(Calls ?? new Dictionary<string, string>())
                .Concat(Warmth is null ? [] : [new("warm-up", Warmth.ToString())]).ToDictionary());
    }

    /// <param name="operation">
    /// Given the worker's index (so a worker can own a connection) and a unique sequence number; returns true for a
    /// success. An exception ends the run.
    /// </param>
    /// <param name="warmStack">
    /// The operation goes through the silo: the warm-up goes on until its JIT settles. Baselines that only reach Redis
    /// or MariaDB from the bench process do not wait.
    /// </param>
    public static async Task<Outcome> RunAsync(int workers, BenchSettings settings, Func<int, long, Task<bool>> operation,
        IBenchProgress progress, string label, bool warmStack = false)
    {
        long next = -1;
        long succeeded = 0;
        var stop = 0;
        var clock = Stopwatch.StartNew();
        var loops = Enumerable.Range(0, workers).Select(worker => Task.Run(async () =>
        {
            while (Volatile.Read(ref stop) == 0)
            {
                if (await operation(worker, Interlocked.Increment(ref next)))
                {
                    Interlocked.Increment(ref succeeded);
                }
            }
        })).ToArray();
        var all = Task.WhenAll(loops);

        // Sampling the success counter at the window's edges keeps warm-up and drain out of the figure.
        await Task.WhenAny(all, Task.Delay(settings.Warmup));
        RuntimeWarmth.Result? warmth = null;
        if (warmStack && !all.IsCompleted)
        {
            progress.Status($"{label}: warming up until the stack's JIT settles");
            warmth = await RuntimeWarmth.WaitAsync(settings.JitSettleLimit);
        }

        await using var calls = await ServiceCalls.StartAsync();
        var atStart = Interlocked.Read(ref succeeded);
        var cpu = StackCpu.Start();
        var windowStartUtc = DateTimeOffset.UtcNow;
        var windowStart = clock.Elapsed;
        // The window is timed from its own start: the warm-up may have run past settings.Warmup.
        while (!all.IsCompleted && clock.Elapsed - windowStart < settings.Measure)
        {
            await Task.WhenAny(all, Task.Delay(250));
            var done = Interlocked.Read(ref succeeded) - atStart;
            var seconds = Math.Max(0.001, (clock.Elapsed - windowStart).TotalSeconds);
            progress.Status($"{label}: {done:N0} in {seconds:F1} s ({done / seconds:N0}/s)");
        }

        var atEnd = Interlocked.Read(ref succeeded);
        var window = clock.Elapsed - windowStart;
        var windowEndUtc = DateTimeOffset.UtcNow;
        var used = cpu.Stop();
        var served = await calls.StopAsync(atEnd - atStart);
        Volatile.Write(ref stop, 1);
        // A failed operation surfaces here: the run is then not reported.
        await all;
        if (atEnd == atStart)
        {
            throw new BenchCheckException($"{label}: nothing succeeded in the counted window of {window.TotalSeconds:F1} s; no figure is reported");
        }

        return new Outcome(Interlocked.Read(ref next) + 1, Interlocked.Read(ref succeeded), atEnd - atStart, window, used, windowStartUtc, windowEndUtc, served,
            warmth);
    }
}
