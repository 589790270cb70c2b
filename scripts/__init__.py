"""Tools for working on Lantern, run from the repository root (`python3 scripts/NAME.py`)."""
