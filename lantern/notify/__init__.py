"""Insights → Slack: message builders, the chart, the sender, the outbox, the connection."""
