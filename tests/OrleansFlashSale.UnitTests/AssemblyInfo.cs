// Some of these tests set process-wide environment variables (the command line's gateway URL and timeout): one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
