using OrleansFlashSale.Cli;

return await CommandLine.RunAsync(args);
