"""Tracking breaks: an event that stops being sent while what sends it keeps going.

A metric's detector sees one series; whether its silence is an outage or a tracking break
is a judgement across a source's metrics, made here when the insight opens, with what the
database holds up to the hour of the detection (never later):

* an **outage** of a track event, page or screen is a tracking break when the source's
  other events kept at least `KEPT_SHARE` of their usual volume over the silent hours; a
  new name of the same kind first seen within `NEW_NAME_HOURS` of the stop, at a volume
  within `VOLUME_FACTOR` of the stopped event's usual one, is named as the suspected new
  name (a rename in a release). Without other events, the new name alone says the source
  kept sending;
* a **drop** or downward **level shift** of one is a tracking break when one app version
  (breakdown `app_version`) stopped sending it, while the other versions kept sending it
  and that version kept sending the source's other events.

"Usual" is the mean of the same hours on each of the `USUAL_DAYS` days before: the hours
of a day differ, and a week of them takes the weekdays in. The insight keeps the detector's
fingerprint, so the detector's later events (updated, resolved) still reach it, and its
feedback still raises the bar of the kind the detector found (`feedback_raised`).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Connection

from lantern.breakdowns.dimensions import OTHER
from lantern.breakdowns.read import breakdown_series
from lantern.detect.kinds import DetectionKind
from lantern.errors import NotFound
from lantern.metrics.keys import MetricKind
from lantern.metrics.models import Bucket, Metric
from lantern.metrics.service import hour_index

log = logging.getLogger(__name__)

# The metrics whose silence may be a tracking break: one per event name, page or screen.
TRACKED = (MetricKind.TRACK.value, MetricKind.PAGE.value, MetricKind.SCREEN.value)
# The detector kinds a tracking break is told instead of: the event stopped (outage), or
# one app version stopped sending it (the event dropped without stopping).
STOPPED = DetectionKind.OUTAGE.value
DROPPED = (DetectionKind.DROP.value, DetectionKind.LEVEL_SHIFT.value)
# The days whose same hours make the usual volume: a week takes in the weekdays.
USUAL_DAYS = 7
# A source that kept half its other events over the silent hours did not go silent itself;
# a source-wide outage (a dead SDK, a broken release) takes them all down together.
KEPT_SHARE = 0.5
# Usual events over the silent hours, below which neither a silence nor what kept sending
# means anything: none of 10 expected happens by chance once in 22,000 (Poisson).
EVIDENCE = 10.0
# A new name first seen this close to the stop (hours, either side) may be its new name:
# a release rolls out over an hour or two, and the stop is dated by its first silent hour.
NEW_NAME_HOURS = 3
# A new name's volume within this factor of the stopped event's usual one is its volume.
VOLUME_FACTOR = 2.0
# How far before the detector's start a version's last event may be looked for: the
# detector may date a drop an hour or two before the version stopped.
VERSION_SLACK_HOURS = 2
APP_VERSION = "app_version"


@dataclass(frozen=True, slots=True)
class TrackingBreak:
    """Why an insight is told as a tracking break; stored as the insight's JSON."""

    detected_as: str  # the detector's kind: outage, drop or level_shift
    kept_share: float | None  # what kept sending, against its usual volume
    renamed_to: str | None = None  # the suspected new name
    renamed_metric_id: int | None = None
    volume_ratio: float | None = None  # the new name's volume against the stopped one's
    app_version: str | None = None  # the app version that stopped sending the event

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def shown(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored tracking break as the API gives it: every field (None where the row has
    none, as an older row may not), and its line."""
    fields = {name: stored.get(name) for name in TrackingBreak.__dataclass_fields__}
    fields["detected_as"] = fields["detected_as"] or STOPPED
    return {**fields, "text": describe(stored)}


def describe(stored: dict[str, Any]) -> str:
    """The tracking break in one line, as Slack, the newsfeed, the page and the API say it."""
    version = stored.get("app_version")
    if version is not None:
        return f"app version {version} stopped sending it; the other versions kept sending it"
    renamed = stored.get("renamed_to")
    if renamed is not None:
        ratio = stored.get("volume_ratio")
        volume = f", at {ratio:.0%} of its volume" if ratio is not None else ""
        return f"renamed to '{renamed}'? That name started as it stopped{volume}"
    kept = stored.get("kept_share")
    share = f" ({kept:.0%} of their usual volume)" if kept is not None else ""
    return (
        f"its source kept sending its other events{share}: check the tracking of the "
        "release it stopped with"
    )


def find_tracking_break(
    connection: Connection,
    *,
    metric_id: int,
    detected_as: str,
    direction: str,
    start: Any,
    detected_at: Any,
) -> TrackingBreak | None:
    """The tracking break an opening insight is, or None when it is what the detector said.

    A fault in the arithmetic is logged and leaves the insight as the detector found it.
    """
    if direction != "down" or (detected_as != STOPPED and detected_as not in DROPPED):
        return None
    metric = connection.execute(
        select(Metric.source_id, Metric.kind).where(Metric.id == metric_id)
    ).first()
    if metric is None or metric.kind not in TRACKED:
        return None
    first, last = _hour(start), _hour(detected_at)
    last = max(first, last)
    try:
        if detected_as == STOPPED:
            return _stopped(connection, metric_id, metric.source_id, metric.kind, first, last)
        return _version_stopped(connection, metric_id, metric.source_id, detected_as, first, last)
    except (ArithmeticError, ValueError, KeyError):
        log.exception("tracking break not judged: metric=%s", metric_id)
        return None


def _stopped(
    connection: Connection, metric_id: int, source_id: int, kind: str, first: int, last: int
) -> TrackingBreak | None:
    """An outage whose source kept sending, with the new name that may have replaced it."""
    totals = connection.scalars(
        select(Metric.id).where(Metric.source_id == source_id, Metric.kind == MetricKind.TOTAL)
    ).all()
    counts = _counts(connection, [metric_id, *totals], first - USUAL_DAYS * 24, last)
    own = counts.get(metric_id, {})
    others: dict[int, float] = defaultdict(float)
    for total in totals:
        for hour, count in counts.get(total, {}).items():
            others[hour] += count
    for hour, count in own.items():
        others[hour] -= count  # the totals count the stopped event too
    others_usual, others_now = _usual(others, first, last), _sum(others, first, last)
    renamed = _new_name(connection, metric_id, source_id, kind, own, first, last)
    if others_usual >= EVIDENCE:
        kept = others_now / others_usual
        if kept < KEPT_SHARE:
            return None  # the source went (mostly) quiet: an outage
    elif renamed is None:
        return None  # too few other events to tell the source kept sending
    else:
        kept = None
    return TrackingBreak(
        detected_as=STOPPED,
        kept_share=None if kept is None else round(kept, 3),
        renamed_to=renamed[1] if renamed else None,
        renamed_metric_id=renamed[0] if renamed else None,
        volume_ratio=round(renamed[2], 3) if renamed else None,
    )


def _new_name(
    connection: Connection,
    metric_id: int,
    source_id: int,
    kind: str,
    own: dict[int, float],
    first: int,
    last: int,
) -> tuple[int, str, float] | None:
    """The name of the same kind that began by the stop at the volume the event had."""
    hourly = _usual(own, first, last) / (last - first + 1)
    if hourly <= 0:
        return None
    candidates = connection.execute(
        select(Metric.id, Metric.name, Metric.first_hour).where(
            Metric.source_id == source_id,
            Metric.kind == kind,
            Metric.id != metric_id,
            Metric.first_hour >= first - NEW_NAME_HOURS,
            Metric.first_hour <= min(last, first + NEW_NAME_HOURS),
        )
    ).all()
    if not candidates:
        return None
    counts = _counts(connection, [c.id for c in candidates], first, last)
    best: tuple[int, str, float] | None = None
    for candidate in candidates:
        since = max(first, candidate.first_hour)
        volume = _sum(counts.get(candidate.id, {}), since, last) / (last - since + 1)
        ratio = volume / hourly
        if not 1 / VOLUME_FACTOR <= ratio <= VOLUME_FACTOR:
            continue
        if best is None or abs(math.log(ratio)) < abs(math.log(best[2])):
            best = (candidate.id, candidate.name, ratio)
    return best


def _version_stopped(
    connection: Connection, metric_id: int, source_id: int, detected_as: str, first: int, last: int
) -> TrackingBreak | None:
    """A drop in which one app version stopped sending the event while the others went on,
    and that version went on sending the source's other events."""
    since, until = hour_index(first - USUAL_DAYS * 24), hour_index(last + 1)
    try:
        split = breakdown_series(
            connection, metric_id=metric_id, dimension=APP_VERSION, start=since, end=until
        )
    except NotFound:
        return None  # the source does not break its events down by app version
    if split.empty:
        return None
    origin = first - USUAL_DAYS * 24
    by_version = {str(c): _by_hour(split[c], origin) for c in split.columns}
    totals = _version_totals(connection, source_id, since, until, origin)
    found: tuple[float, str, float] | None = None
    for version, hours in by_version.items():
        if version == OTHER:
            continue
        quiet_from = _quiet_from(hours, first, last)
        if quiet_from is None:
            continue
        usual = _usual(hours, quiet_from, last)
        if usual < EVIDENCE:
            continue
        rest: dict[int, float] = defaultdict(float)
        for other, counts in by_version.items():
            if other != version:
                for hour, count in counts.items():
                    rest[hour] += count
        rest_usual = _usual(rest, quiet_from, last)
        if rest_usual < EVIDENCE or _sum(rest, quiet_from, last) < KEPT_SHARE * rest_usual:
            continue  # the other versions stopped too, or there are too few to tell
        elsewhere = {h: c - hours.get(h, 0.0) for h, c in totals.get(version, {}).items()}
        elsewhere_usual = _usual(elsewhere, quiet_from, last)
        if elsewhere_usual < EVIDENCE:
            continue
        kept = _sum(elsewhere, quiet_from, last) / elsewhere_usual
        if kept < KEPT_SHARE:
            continue  # the version went quiet altogether: its users moved on
        if found is None or usual > found[0]:
            found = (usual, version, kept)
    if found is None:
        return None
    return TrackingBreak(
        detected_as=detected_as,
        kept_share=round(found[2], 3),
        app_version=found[1],
    )


def _quiet_from(hours: dict[int, float], first: int, last: int) -> int | None:
    """The first hour from which a version sent nothing up to `last`, if it is that late."""
    sent = [h for h in range(first - VERSION_SLACK_HOURS, last + 1) if hours.get(h, 0.0) > 0]
    quiet_from = (sent[-1] + 1) if sent else first - VERSION_SLACK_HOURS
    return quiet_from if quiet_from <= last else None


def _version_totals(
    connection: Connection, source_id: int, since: Any, until: Any, origin: int
) -> dict[str, dict[int, float]]:
    """Each app version's events of every kind, by hour (the source's totals split)."""
    totals = connection.scalars(
        select(Metric.id).where(Metric.source_id == source_id, Metric.kind == MetricKind.TOTAL)
    ).all()
    summed: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for total in totals:
        split = breakdown_series(
            connection, metric_id=total, dimension=APP_VERSION, start=since, end=until
        )
        for column in split.columns:
            for hour, count in _by_hour(split[column], origin).items():
                summed[str(column)][hour] += count
    return summed


def _by_hour(series: pd.Series, origin: int) -> dict[int, float]:
    return {origin + i: float(v) for i, v in enumerate(series.to_numpy()) if v}


def _counts(
    connection: Connection, metric_ids: Iterable[int], first: int, last: int
) -> dict[int, dict[int, float]]:
    """Each metric's hourly counts over hours [first, last] (epoch hours)."""
    rows = connection.execute(
        select(Bucket.metric_id, Bucket.hour, Bucket.count).where(
            Bucket.metric_id.in_(list(metric_ids)), Bucket.hour >= first, Bucket.hour <= last
        )
    ).all()
    counts: dict[int, dict[int, float]] = defaultdict(dict)
    for metric_id, hour, count in rows:
        counts[metric_id][hour] = float(count)
    return counts


def _sum(hours: dict[int, float], first: int, last: int) -> float:
    return sum(hours.get(h, 0.0) for h in range(first, last + 1))


def _usual(hours: dict[int, float], first: int, last: int) -> float:
    """The mean, over the days before, of the same hours' total."""
    return sum(_sum(hours, first - 24 * d, last - 24 * d) for d in range(1, USUAL_DAYS + 1)) / (
        USUAL_DAYS
    )


def _hour(moment: Any) -> int:
    return int(pd.Timestamp(moment).timestamp() // 3600)
