"""`python -m lantern` is the `lantern` command."""

from lantern.cli import main

main()
