"""The dashboard API's request and response bodies, shared by its routers."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from lantern.breakdowns.dimensions import MAX_DIMENSIONS
from lantern.dashboard.status import Status
from lantern.metrics.keys import Measure

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
Sensitivity = Literal["low", "medium", "high"]
# How the alerts held in the quiet hours go when they end (see `notify.summary`).
QUIET_HOURS_DELIVERY = ("each", "summary")
DetectorKind = Literal[
    "level_shift",
    "trend_change",
    "seasonality_change",
    "spike",
    "drop",
    "outage",
    "tracking_break",
]


def _iso(value: object) -> object:
    """Only ISO 8601 text (or a datetime): a bare number is not taken for a Unix time."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not ISO_DATE.match(value):
        raise ValueError("must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z")
    return value


def _moment(value: datetime) -> datetime:
    """A time as UTC (no offset means UTC), within the years Lantern can store."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if not 1970 <= value.year <= 2999:
        raise ValueError("must be a time between the years 1970 and 2999")
    return value.astimezone(UTC)


def _name(value: str) -> str:
    """Trimmed, not blank, and free of control characters (and lone surrogates)."""
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise ValueError("must not contain control characters")
    return value


Moment = Annotated[datetime, BeforeValidator(_iso), AfterValidator(_moment)]
Id = Annotated[int, Path(ge=1, le=2_147_483_647, description="the object's id")]
Name = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_name)]


class ErrorOut(BaseModel):
    """Every error: `error` is a stable code, `detail` says what to do (Segment's names too)."""

    error: str
    detail: str
    code: str
    message: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "The body is not JSON"},
    401: {"model": ErrorOut, "description": "No API token or session, or an unknown one"},
    403: {"model": ErrorOut, "description": "A browser session's change without its CSRF token"},
    404: {"model": ErrorOut, "description": "No such object in this workspace"},
    422: {"model": ErrorOut, "description": "A parameter or body field is invalid"},
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        """Refuse NUL characters: no database keeps them in text (PostgreSQL refuses them)."""
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("text must not contain NUL (\\x00) characters")
        return value


# Sources


class SourceIn(Strict):
    name: Name


class SourceOut(BaseModel):
    id: int
    name: str
    key_hint: str = Field(description="the first characters of the API key")
    created_at: datetime
    rotated_at: datetime | None
    metrics: int
    trained_metrics: int
    training_ends_at: datetime | None = Field(
        description="when the source's earliest metric finishes its 7 training days"
    )
    training_left_seconds: int | None
    events_last_hour: int = Field(
        description="events received in the last 60 minutes, history sent to /v1/import too"
    )
    events_this_hour: int = Field(description="events dated in the current UTC hour")
    earlier_events_last_hour: int = Field(
        description="events received in the last 60 minutes but dated before the previous "
        "hour: history sent to /v1/import, or late events"
    )
    last_event_at: datetime | None


class SourceKeyOut(BaseModel):
    id: int
    name: str
    key_hint: str
    created_at: datetime
    rotated_at: datetime | None
    api_key: str = Field(description="shown only now: paste it into Segment")


class DebugMinuteOut(BaseModel):
    minute: datetime
    accepted: int
    rejected: int
    duplicates: int
    over_cap: int


class DimensionValueOut(BaseModel):
    value: str = Field(description='a value, or "(other)" for the values past the cap')
    events: int = Field(description="events with this value in the last 24 hours")


class DimensionOut(BaseModel):
    name: str = Field(description='a default ("os", "country", ...) or "properties.<key>"')
    recording: bool = Field(description="false once refused: it counts nothing")
    refused: str | None = Field(description="why its values were found personal")
    refused_at: datetime | None
    values: list[DimensionValueOut]
    full: bool = Field(description='its cap of values is reached: new values are "(other)"')


class DimensionsOut(BaseModel):
    source_id: int
    cap: int = Field(description="values a dimension counts on their own; the rest are other")
    dimensions: list[DimensionOut]


class DimensionsIn(Strict):
    dimensions: list[Annotated[str, Field(max_length=200)]] = Field(
        max_length=50,
        description='the whole list: defaults by name ("os", "app_version", "library", '
        '"country", "page_path") and "properties.<key>"',
    )


class DebugOut(BaseModel):
    source_id: int
    accepted: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    rejection_reasons: dict[str, int]
    per_minute: list[DebugMinuteOut]
    over_cap_latest_hour: int = Field(description="events in the overflow metric's latest hour")
    over_cap_last_hour: int = Field(description="events received in the last hour over the cap")
    over_cap: list[str] = Field(description="recently sent names that fell into the overflow")
    dimensions: list[DimensionOut] = Field(description="breakdown dimensions and values seen")


# Metrics


class BreakdownOfOut(BaseModel):
    dimension: str = Field(description='the dimension ("os", "properties.plan")')
    value: str = Field(description="the value whose events the metric counts")


class MetricOut(BaseModel):
    id: int
    source_id: int
    source_name: str
    kind: str = Field(
        description="track, page, screen, total, value (the hourly sum of the events' "
        "values), mean (their hourly average), flag, experiment, overflow, or breakdown "
        "(one value of another metric's breakdown, watched as a metric: see `parent_id`)"
    )
    name: str
    label: str = Field(description='how the metric is named to a person: "Signed Up"')
    value_metric: bool = Field(description="whether the hours hold values (a sum or an average)")
    measure: Measure = Field(
        description="what an hour holds: `count` (events), `sum` (of the events' values) or "
        "`average` (of the events' values; an hour without a value has none)"
    )
    status: Status
    training_left_seconds: int | None
    snoozed_until: datetime | None
    muted: bool
    latest_hour: datetime | None
    latest_value: float | None = Field(
        description="the latest hour's events, sum or average (see `measure`)"
    )
    volume_7d: float | None = Field(
        description="events (or the sum of values) over the last 7 days; for an average, "
        "the average over them (null if none carried a value)"
    )
    open_insights: int
    owner: str | None = Field(
        default=None, description="the Slack user (U…, W…) or user group (S…) its alerts mention"
    )
    note: str | None = Field(default=None, description="what its alerts say to check first")
    feedback: dict[str, int] | None = Field(
        default=None,
        description="one metric only: the kinds whose bar the team's 'not useful' raised, and "
        'by how many settings (towards low), e.g. {"spike": 1}; {} when none',
    )
    parent_id: int | None = Field(
        default=None,
        description="a breakdown value's metric (kind `breakdown`): the metric whose events "
        "it counts; null for every other",
    )
    breakdown: BreakdownOfOut | None = Field(
        default=None, description="a breakdown value's metric: its dimension and value"
    )


class MetricPageOut(BaseModel):
    items: list[MetricOut]
    next_cursor: str | None = Field(
        description="pass it back as `cursor` for the next page; null on the last page"
    )
    total: int = Field(description="how many metrics the filters match, on every page")


class PointOut(BaseModel):
    t: datetime
    observed: float | None
    expected: float | None
    lower: float | None
    upper: float | None
    partial: bool = Field(description="the hour (or day) under way: counted so far, not judged yet")
    hours: int = Field(description="hours the point stands for: 1, or a day's hours with data")
    outside: int | None = Field(
        description="for a day: how many of its judged hours were outside the band"
    )


class AnomalyOut(BaseModel):
    insight_id: int
    kind: str
    kind_label: str = Field(description='how the kind is named to a person: "Level shift"')
    direction: str
    start: datetime
    end: datetime | None
    severity: str
    status: str


class SeriesOut(BaseModel):
    metric: MetricOut
    points: list[PointOut]
    anomalies: list[AnomalyOut]
    step: Literal["hour", "day"] = Field(description="one point per hour, or per UTC day")


class AlertDimensionOut(BaseModel):
    name: str = Field(description="one of the source's breakdown dimensions")
    alerting: bool = Field(description="each of its values is watched as a metric")
    recording: bool = Field(description="false once refused: it counts nothing")
    refused: str | None = Field(description="why its values were found personal")


class ValueAlertsOut(BaseModel):
    metric_id: int
    unavailable: str | None = Field(
        description="why this metric cannot have alerts per value (a sum or an average of "
        "values, the metrics over the cap, a value's metric); null when it can"
    )
    dimensions: list[AlertDimensionOut] = Field(
        description="the source's dimensions, in their order; empty when `unavailable`"
    )
    metrics: list[MetricOut] = Field(
        description="the metrics of the watched values, by dimension and value"
    )


class ValueAlertsIn(Strict):
    dimensions: list[Annotated[str, Field(max_length=200)]] = Field(
        max_length=MAX_DIMENSIONS,
        description="the whole list of dimensions whose values are each watched as a metric "
        "(of the source's, not refused); [] stops them all",
    )


class WatchIn(Strict):
    muted: bool
    snoozed_until: Moment | None = None


class OwnerIn(Strict):
    owner: str | None = Field(
        default=None,
        max_length=30,
        description="a Slack member id (U… or W…: a profile's ⋮ menu, Copy member ID) or a "
        "user group id (S…), mentioned in the metric's alerts; null for nobody",
    )
    note: str | None = Field(
        default=None, max_length=500, description="what to check first, shown in its alerts"
    )

    @field_validator("owner")
    @classmethod
    def _slack_id(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().removeprefix("<@").removeprefix("<!subteam^").rstrip(">")
        if not re.fullmatch(r"[UWS][A-Z0-9]{2,20}", value):
            raise ValueError(
                "expected a Slack member id (U… or W…) or user group id (S…), e.g. U024BE7LH"
            )
        return value


class MuteIn(Strict):
    until: Moment | None = Field(
        default=None, description="null mutes the metric; a future time snoozes it until then"
    )


# Insights


class InWordsOut(BaseModel):
    sureness: Literal["very_sure", "sure", "unsure"] = Field(
        description="how sure Lantern is that the change is real, from the detector's score"
    )
    sureness_label: str = Field(description='e.g. "Very unlikely to be chance"')
    how_sure: str = Field(description="the sureness, with how often chance alone would do it")
    severity: str = Field(description="what the severity means")
    status: str = Field(description="what the status means")
    normal_range: str = Field(description="the normal range as a range, and what was observed")
    next_step: str = Field(description="what to do now")


class RootCauseValueOut(BaseModel):
    value: str = Field(description='a value of the dimension: "5.2", "iOS", "(other)"')
    observed: float | None = Field(description="per hour, averaged over the episode's hours")
    expected: float | None = Field(
        description="the value's own expectation per hour over the same hours"
    )
    relative_change: float | None = Field(
        description="(observed - expected) / expected; null for a value not expected at all"
    )
    contribution: float | None = Field(
        description="its share of the move in the insight's direction (negative: moved the "
        "other way)"
    )
    named: bool = Field(description="told as (part of) the root cause")


class RootCauseOut(BaseModel):
    text: str = Field(
        description='the line Slack, the newsfeed and the page show: "app version 5.2: '
        '\u221292% (explains 88% of the drop)", or that the change is broad'
    )
    broad: bool = Field(description="no value of any dimension explains most of the change")
    direction: str
    dimension: str | None = Field(description="the dimension told; null when broad")
    dimension_label: str | None
    shown: str | None = Field(
        description="the dimension whose values are listed (when broad, the one that came nearest)"
    )
    shown_label: str | None
    checked: list[str] = Field(description="the dimensions that saw the change")
    values: list[RootCauseValueOut] = Field(
        description="that dimension's values, largest contribution first (at most 5)"
    )


class RootCausePointOut(BaseModel):
    t: datetime
    observed: float | None
    expected: float | None


class RootCauseSeriesOut(BaseModel):
    value: str
    points: list[RootCausePointOut]


class RootCauseChartOut(BaseModel):
    start: datetime = Field(description="the episode's start, as the insight has it")
    end: datetime = Field(description="the end of the last hour shown")
    values: list[RootCauseSeriesOut] = Field(
        description="each value told (when broad, the two nearest): its hours from two days "
        "before the start, observed against its own expectation"
    )


class IncidentSourceOut(BaseModel):
    source_id: int
    source_name: str
    metrics: int = Field(description="how many of the source's metrics are in the incident")
    of: int = Field(
        description="the source's active metrics: trained, with events in the day before"
    )


class IncidentOut(BaseModel):
    scope: Literal["source", "workspace"] = Field(
        description='what went down together: "source", most of one source\'s metrics; '
        '"workspace", most of each of two or more sources\' of one workspace'
    )
    metrics: int = Field(description="how many metrics are in the incident, all sources")
    of: int = Field(
        description="its sources' active metrics: trained, with events in the day before"
    )
    since: datetime = Field(description="the earliest start of the incident's insights")
    ended_at: datetime | None = Field(
        description="when the last of its metrics was over; null while one still is not"
    )
    text: str = Field(
        description='one line: "web: 14 of 16 metrics went down or quiet together since '
        '10:00 UTC — a broken pipeline, an expired key or a holiday?"; for a workspace, '
        '"All 3 sources of workspace demo: 40 of 46 ..." or "web, ios: 30 of 34 ..."'
    )
    sources: list[IncidentSourceOut] = Field(
        description="each source's part, the leader's source first (one for a source's)"
    )


class TrackingBreakOut(BaseModel):
    detected_as: str = Field(
        description='the kind the detector found: "outage" (the event stopped), or "drop" '
        'or "level_shift" (one app version stopped sending it)'
    )
    kept_share: float | None = Field(
        description="what kept sending over the silent hours (the source's other events, "
        "or that app version's other events) against its usual volume; 1.0 is as usual"
    )
    renamed_to: str | None = Field(
        description="a new name of the same kind that started as the event stopped, at its "
        "volume: the suspected new name"
    )
    renamed_metric_id: int | None = Field(description="the metric of the suspected new name")
    volume_ratio: float | None = Field(
        description="the new name's volume against the stopped event's usual volume"
    )
    app_version: str | None = Field(description="the app version that stopped sending it")
    text: str = Field(
        description="the tracking break in one line, as Slack and the dashboard say it: "
        "\"renamed to 'Order Completed v2'? ...\""
    )


class InsightSummary(BaseModel):
    id: int
    metric_id: int
    metric_label: str
    source_id: int
    source_name: str
    kind: str
    kind_label: str = Field(description='how the kind is named to a person: "Level shift"')
    direction: str
    status: str
    severity: str
    start: datetime
    detected_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    observed: float
    expected: float
    lower: float
    upper: float
    relative_change: float
    score: float
    useful: bool | None
    related: int = Field(description="how many insights are grouped under this one")
    tracking_break: TrackingBreakOut | None = Field(
        description='why an insight of kind "tracking_break" is one; null for other kinds'
    )
    words: InWordsOut = Field(description="the insight in words a person reads")
    root_cause: RootCauseOut | None = Field(
        description="the breakdown values that explain the change, as found when the insight "
        "opened; null without breakdown data (or for an average)"
    )
    incident: IncidentOut | None = Field(
        description="set on the insight that leads a story going down that covers most of "
        "its source's active metrics (at least half, and at least 3): a source-wide "
        "incident, or, with two or more sources of the workspace so at once, a "
        "workspace-wide one, told in one alert; null otherwise"
    )


class InsightPage(BaseModel):
    items: list[InsightSummary]
    next_cursor: str | None


class CauseOut(BaseModel):
    flag_key: str
    old_version: int | None
    new_version: int
    changed_at: datetime


class NotificationOut(BaseModel):
    purpose: str
    status: str
    error: str | None
    sent_at: datetime | None


class InsightOut(InsightSummary):
    related: list[InsightSummary]  # type: ignore[assignment]
    causes: list[CauseOut]
    notifications: list[NotificationOut]
    metric: MetricOut
    root_cause_chart: RootCauseChartOut | None = Field(
        description="the hours of the values the root cause tells, for the insight's page"
    )


class FeedbackIn(Strict):
    useful: bool


class FeedbackCount(BaseModel):
    kind: str
    kind_label: str = Field(description='how the kind is named to a person: "Level shift"')
    useful: int
    not_useful: int


# Settings


class WorkspaceOut(BaseModel):
    id: int
    name: str


class Delivery(Strict):
    time_zone: str = Field(
        default="UTC", max_length=64, description="an IANA time zone, e.g. Europe/Paris"
    )
    quiet_start: int | None = Field(
        default=None, ge=0, le=23, description="local hour the quiet hours begin; null: none"
    )
    quiet_end: int | None = Field(
        default=None, ge=0, le=23, description="local hour they end (22 to 7 spans midnight)"
    )
    quiet_holds_outages: bool = Field(
        default=False, description="hold high-severity outages too (by default they go at once)"
    )
    quiet_hours_delivery: str = Field(
        default="each",
        max_length=16,
        description="how the alerts held in the quiet hours go when they end: `each` (one "
        "message per insight) or `summary` (one message listing them, their threads in it)",
        json_schema_extra={"enum": list(QUIET_HOURS_DELIVERY)},
    )
    digest_hour: int | None = Field(
        default=None,
        ge=0,
        le=23,
        description="local hour of a daily digest of low-severity alerts, which then are not "
        "posted one by one; null: none",
    )

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                "expected an IANA time zone such as Europe/Paris or America/New_York"
            ) from None
        return value

    @field_validator("quiet_hours_delivery")
    @classmethod
    def _how(cls, value: str) -> str:
        if value not in QUIET_HOURS_DELIVERY:
            raise ValueError(
                "quiet_hours_delivery is `each` (one message per insight when the quiet hours "
                "end) or `summary` (one message listing them all)"
            )
        return value

    @model_validator(mode="after")
    def _both_or_neither(self) -> Delivery:
        if (self.quiet_start is None) != (self.quiet_end is None):
            raise ValueError("give both quiet_start and quiet_end, or neither")
        if self.quiet_start is not None and self.quiet_start == self.quiet_end:
            raise ValueError("quiet_start and quiet_end must differ")
        return self


class SettingsOut(BaseModel):
    workspace: WorkspaceOut
    sensitivity: Sensitivity
    delivery: Delivery = Field(description="when Slack messages wait: the quiet hours")


class SettingsIn(Strict):
    sensitivity: Sensitivity | None = None
    delivery: Delivery | None = Field(
        default=None, description="Slack messages due in the quiet hours wait for their end"
    )
