namespace OrleansFlashSale.Grains;

/// <summary>
/// The answers of one <see cref="BucketGrain.PurchaseManyAsync"/> call, filled in place and awaited once. A task per
/// purchase would queue one continuation per buyer on the activation when a script answers; this way a call of any
/// size is one.
/// </summary>
/// <remarks>Only touched on the activation's scheduler, which runs one turn at a time, so it needs no lock.</remarks>
internal sealed class PurchaseCall
{
    private readonly PurchaseReply?[] _replies;
    private readonly TaskCompletionSource<PurchaseReply[]> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _pending;

    /// <param name="sale">The sale as the call found it: the refusals it explains quote its limit.</param>
    /// <param name="answered">Turns a home purchase's script answer (or its failure) into a reply.</param>
    public PurchaseCall(int count, SaleDefinition sale, Action<BucketWork, HomePurchaseAnswer?, Exception?> answered)
    {
        _replies = new PurchaseReply?[count];
        _pending = count;
        Sale = sale;
        Answered = answered;
        if (count == 0)
        {
            _done.SetResult([]);
        }
    }

    public SaleDefinition Sale { get; }

    public Action<BucketWork, HomePurchaseAnswer?, Exception?> Answered { get; }

    public Task<PurchaseReply[]> Replies => _done.Task;

    /// <summary>Sets the reply of one purchase; the call completes with its last one.</summary>
    public void Reply(int slot, PurchaseReply reply)
    {
        if (_replies[slot] is not null)
        {
            throw new InvalidOperationException($"Purchase {slot} of this call was answered twice.");
        }

        _replies[slot] = reply;
        if (--_pending == 0)
        {
            _done.SetResult(_replies!);
        }
    }
}
