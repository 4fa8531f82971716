namespace OrleansFlashSale.Grains.Pipeline;

/// <summary>The per-SKU bridge from the Orleans stream of committed deductions to JetStream.</summary>
[Alias("flashsale.IDeductionBridgeGrain")]
public interface IDeductionBridgeGrain : IGrainWithStringKey;
