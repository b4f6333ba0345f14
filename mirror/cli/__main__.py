"""`python -m mirror.cli` runs the `regionlink` command line."""

from mirror.cli.app import main

main()
