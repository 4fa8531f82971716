using OrleansFlashSale.Redis;

namespace OrleansFlashSale.Grains;

/// <summary>
/// The length of the bucket's deduction log, for the <c>flashsale.redis.log_length</c> gauge: read on a timer (one
/// XLEN per bucket and period, off the purchase path), so a log the pipeline stops trimming shows even when no commit
/// event arrives. Only active buckets report, each from the silo it lives in, so the silos' values add up.
/// </summary>
public sealed partial class BucketGrain
{
    private void StartLogSampling()
    {
        var period = TimeSpan.FromSeconds(_options.LogSampleSeconds);
        // Not kept alive by the timer: an idle bucket deactivates as before and stops reporting.
        this.RegisterGrainTimer(SampleLogLengthAsync, new GrainTimerCreationOptions(period, period) { Interleave = true, KeepAlive = false });
    }

    private async Task SampleLogLengthAsync(CancellationToken cancellationToken)
    {
        try
        {
            var db = await _redis.GetDatabaseAsync();
            _metrics.LogLength(_sku, _index, await db.StreamLengthAsync(RedisKeys.Log(_sku, _index)));
        }
        catch (Exception ex)
        {
            _metrics.RedisFailure("log-length");
            Log.LogSampleFailed(_logger, ex, _sku, _index);
        }
    }

    private void StopLogSampling() => _metrics.LogLengthGone(_sku, _index);
}
