"""What the dashboard shows: metric status, charts, the insight feed, overviews, the debug view.

These read-models sit above the data path (ingest, metrics, detect, insights, notify) and
import from it; nothing on the data path imports them (see docs/architecture.md).
"""
