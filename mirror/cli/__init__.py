"""The `regionlink` command line: one module per command group, mounted by `app`."""
