"""`python -m mirror.cli` runs the `regionlink` command line."""

from mirror.cli.entry import main

main()
