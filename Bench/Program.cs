using OrleansFlashSale.Bench;

// The arguments are those of ./flashsale bench; usage and errors as the other tools print them.
return await CommandLine.RunAsync(["bench", .. args], BenchCommand.RunAsync);
