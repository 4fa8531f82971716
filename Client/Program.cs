using OrleansFlashSale.Client;

// The HTTP gateway. The command-line tools are OrleansFlashSale.Cli, the benchmarks OrleansFlashSale.Bench.
return await GatewayHost.RunAsync(args);
