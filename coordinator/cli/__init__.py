"""The command line: one sub-command per file, the console and the exit status."""
