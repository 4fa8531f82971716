namespace OrleansFlashSale;

/// <summary>
/// The name of the project's one meter, shared by every process (silo, gateway, client library) so that the hosts can
/// subscribe to it without referencing the code that records on it.
/// </summary>
public static class FlashSaleMeter
{
    public const string Name = "OrleansFlashSale";
}
