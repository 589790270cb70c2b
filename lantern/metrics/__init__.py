"""Metrics (discovered from events), their hourly buckets, and flag changes."""
