"""Breakdowns: a metric's hourly counts split by a few dimensions that are never personal."""
