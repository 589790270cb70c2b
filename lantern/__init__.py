"""Lantern: anomaly alerts for every product metric a team sends through Segment."""

__version__ = "0.1.0"
