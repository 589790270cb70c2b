"""Every table, imported in one place so Alembic and create_all see the whole schema."""

from lantern.accounts.models import User, WebSession
from lantern.breakdowns.models import (
    BreakdownAlert,
    BreakdownBucket,
    BreakdownDimension,
    BreakdownValue,
)
from lantern.db.base import Base
from lantern.ingest.models import DebugEvent, DebugMinute, SeenMessage
from lantern.insights.models import (
    DetectionRun,
    HourExpectation,
    Insight,
    InsightCause,
    MetricWatch,
)
from lantern.metrics.models import Bucket, FlagChange, FlagVersion, Metric
from lantern.notify.models import (
    Notification,
    SlackAction,
    SlackConnection,
    SlackOAuthState,
    Webhook,
    WebhookDelivery,
)
from lantern.workspaces.models import ApiToken, Source, Workspace

__all__ = [
    "ApiToken",
    "Base",
    "BreakdownAlert",
    "BreakdownBucket",
    "BreakdownDimension",
    "BreakdownValue",
    "Bucket",
    "DebugEvent",
    "DebugMinute",
    "DetectionRun",
    "FlagChange",
    "FlagVersion",
    "HourExpectation",
    "Insight",
    "InsightCause",
    "Metric",
    "MetricWatch",
    "Notification",
    "SeenMessage",
    "SlackAction",
    "SlackConnection",
    "SlackOAuthState",
    "Source",
    "User",
    "WebSession",
    "Webhook",
    "WebhookDelivery",
    "Workspace",
]
