using OrleansFlashSale.Client.Api;
using OrleansFlashSale.Client.Cli;

// One executable: the HTTP gateway by default, or a command-line tool when the first argument names one.
return args.Length > 0 && CommandLine.IsCommand(args[0])
    ? await CommandLine.RunAsync(args)
    : await GatewayHost.RunAsync(args);
