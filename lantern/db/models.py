"""Every table, imported in one place so Alembic and create_all see the whole schema."""

from lantern.db.base import Base
from lantern.ingest.models import DebugEvent, DebugMinute, SeenMessage
from lantern.metrics.models import Bucket, FlagChange, FlagVersion, Metric
from lantern.workspaces.models import ApiToken, Source, Workspace

__all__ = [
    "ApiToken",
    "Base",
    "Bucket",
    "DebugEvent",
    "DebugMinute",
    "FlagChange",
    "FlagVersion",
    "Metric",
    "SeenMessage",
    "Source",
    "Workspace",
]
