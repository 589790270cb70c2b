"""Tables for analysts: replayed alerts per sensitivity, insights per week."""

from __future__ import annotations

import pandas as pd

from lantern.detect import KINDS, EpisodeEvent
from lantern.insights.incidents import STORY_WINDOW
from lantern.insights.service import SEVERITIES
from lantern.metrics.keys import label

SENSITIVITIES = ("low", "medium", "high")


def mark_sent(alerts: pd.DataFrame) -> pd.Series:
    """Which alerts lead a story (and are sent); the others are listed in its message."""
    sent = pd.Series(False, index=alerts.index, dtype=bool)
    for _, group in alerts.groupby(["sensitivity", "source", "direction"], sort=False):
        told: list[pd.Timestamp] = []  # starts of the stories already told
        for _, hour in group.groupby("at", sort=True):
            members = hour.sort_values("metric_id").reset_index().to_dict("records")
            if any(abs(members[0]["start"] - start) <= STORY_WINDOW for start in told):
                continue  # a neighbour moving a few hours after a story already told
            # A named metric explains more than a call-type total; then the larger change.
            lead = max(
                members,
                key=lambda m: (m["metric_kind"] != "total", abs(m["relative_change"]) * m["score"]),
            )
            sent[lead["index"]] = True
            told.append(lead["start"])
    return sent


def events_frame(events: list[EpisodeEvent]) -> pd.DataFrame:
    """Episode events as a table: one row per event."""
    rows = [
        {
            "at": event.at,
            "status": event.status,
            "kind": event.detection.kind,
            "direction": event.detection.direction,
            "start": event.detection.start,
            "observed": event.detection.observed,
            "expected": event.detection.expected,
            "relative_change": event.detection.relative_change,
            "score": event.detection.score,
        }
        for event in events
    ]
    columns = [
        "at",
        "status",
        "kind",
        "direction",
        "start",
        "observed",
        "expected",
        "relative_change",
        "score",
    ]
    return pd.DataFrame(rows, columns=columns)


def metric_titles(metrics: pd.DataFrame) -> dict[int, str]:
    """How each metric of a `Lantern.metrics()` table is named to a person, by id.

    Totals read "all track calls" or "identify volume"; a value shares its event's name,
    so both get their kind added.
    """
    titles = {
        int(i): label(k, n) if k == "total" else str(n)
        for i, k, n in zip(metrics.index, metrics["kind"], metrics["name"], strict=True)
    }
    names = list(titles.values())
    return {
        i: f"{title} ({label(str(metrics.at[i, 'kind']), title)})"
        if names.count(title) > 1
        else title
        for i, title in titles.items()
    }


def alert_table(alerts: pd.DataFrame, *, by: str = "kind") -> pd.DataFrame:
    """Alerts per `by` (rows) and sensitivity (columns), with totals and Slack messages."""
    levels = [s for s in SENSITIVITIES if s in set(alerts["sensitivity"])] or list(SENSITIVITIES)
    table = (
        alerts.groupby([by, "sensitivity"]).size().unstack("sensitivity", fill_value=0)
        if len(alerts)
        else pd.DataFrame()
    )
    table = table.reindex(columns=levels, fill_value=0)
    if by == "kind":
        table = table.reindex([k for k in KINDS if k in table.index])
    totals = pd.DataFrame(
        [
            [int((alerts["sensitivity"] == s).sum()) for s in levels],
            [int(((alerts["sensitivity"] == s) & alerts["sent"]).sum()) for s in levels],
        ],
        index=["all alerts", "Slack messages"],
        columns=levels,
    )
    out = pd.concat([table, totals]).astype(int)
    out.index.name = by
    out.columns.name = "sensitivity"
    return out


def weekly(frame: pd.DataFrame, by: str = "kind", *, column: str = "detected_at") -> pd.DataFrame:
    """How many rows fall in each week (from Monday, UTC), one column per value of `by`.

    Weeks without a row are listed with zeros, so a quiet week shows as one.
    """
    moments = pd.to_datetime(frame[column], utc=True).dt.tz_localize(None).dt.normalize()
    weeks = (moments - pd.to_timedelta(moments.dt.day_of_week, unit="D")).rename("week")
    table = frame.groupby([weeks, frame[by]]).size().unstack(by, fill_value=0)
    if len(table):
        table = table.reindex(
            pd.date_range(table.index.min(), table.index.max(), freq="7D"), fill_value=0
        )
    order = {"kind": list(KINDS), "severity": list(SEVERITIES)}.get(by)
    if order is not None:
        table = table.reindex(columns=[c for c in order if c in table.columns])
    table.index.name = "week"
    table.columns.name = by
    return table
