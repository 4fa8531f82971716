using Microsoft.Extensions.Options;
using OrleansFlashSale.Messaging;
using OrleansFlashSale.Redis;

namespace OrleansFlashSale.Grains;

/// <summary>
/// A bucket's transaction must close long before the broker checks it back: a check-back that met it still open
/// would close it under the bucket, whose next batches would then be refused.
/// </summary>
internal sealed class TransactionEpochValidator(IOptions<JetStreamOptions> jetStream) : IValidateOptions<DeductionOptions>
{
    public ValidateOptionsResult Validate(string? name, DeductionOptions options)
    {
        var timeout = jetStream.Value.TransactionTimeout;
        return options.TransactionEpoch * 4 <= timeout
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail(
                $"{DeductionOptions.Section}:TransactionEpochMilliseconds ({options.TransactionEpochMilliseconds}) must be at most a quarter of " +
                $"{JetStreamOptions.Section}:TransactionTimeout ({timeout}).");
    }
}
