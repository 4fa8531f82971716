namespace OrleansFlashSale;

/// <summary>The per-bucket bridge from the Orleans stream of committed deductions to JetStream (key: <see cref="PipelineStreams.Key"/>).</summary>
[Alias("flashsale.IDeductionBridgeGrain")]
public interface IDeductionBridgeGrain : IGrainWithStringKey;
