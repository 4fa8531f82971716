using System.Buffers;

namespace OrleansFlashSale.Client.Api;

/// <summary>
/// A request's body, read once into a pooled buffer of at most <c>MaxBodyBytes + 1</c> bytes, shared by admission
/// control (which needs the buyer before it admits a purchase) and the endpoint (which binds it). Reading it twice
/// through ASP.NET's request buffering cost a file-buffering stream and two fresh buffers per purchase, the
/// gateway's largest allocation under load; the buffer goes back to the pool when the response is done.
/// </summary>
internal sealed class RequestBody : IDisposable
{
    private readonly int _length;
    private byte[]? _buffer;

    private RequestBody(byte[] buffer, int length, bool tooLarge)
    {
        _buffer = buffer;
        _length = length;
        TooLarge = tooLarge;
    }

    /// <summary>The body had more than the limit's bytes; only the first ones were read.</summary>
    public bool TooLarge { get; }

    public ReadOnlySpan<byte> Span => (_buffer ?? throw new ObjectDisposedException(nameof(RequestBody))).AsSpan(0, _length);

    /// <summary>The body of this request, read now or by whoever asked first.</summary>
    public static async ValueTask<RequestBody> ReadAsync(HttpContext context, int limit)
    {
        if (context.Features.Get<RequestBody>() is { } read)
        {
            return read;
        }

        var buffer = ArrayPool<byte>.Shared.Rent(limit + 1);
        var length = 0;
        try
        {
            int count;
            while (length <= limit && (count = await context.Request.Body.ReadAsync(buffer.AsMemory(length, limit + 1 - length), context.RequestAborted)) > 0)
            {
                length += count;
            }
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }

        var body = new RequestBody(buffer, Math.Min(length, limit), length > limit);
        context.Features.Set(body);
        context.Response.RegisterForDispose(body);
        return body;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _buffer, null) is { } buffer)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
