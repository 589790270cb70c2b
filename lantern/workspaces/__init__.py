"""Workspaces, their sources (with API keys) and API tokens."""
