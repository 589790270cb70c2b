"""Figures for analysts: a metric's decomposition with its alerts, alerts per sensitivity.

Each function returns a matplotlib `Figure` made without pyplot, so it works under any
backend and shows as an image in a notebook (`%matplotlib inline`).
"""

from __future__ import annotations

import pandas as pd
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lantern.detect import KINDS, Decomposition

SENSITIVITY_COLORS = {"low": "#31a354", "medium": "#3182bd", "high": "#e6550d"}
KIND_MARKERS = {
    "spike": "^",
    "drop": "v",
    "outage": "X",
    "level_shift": "s",
    "trend_change": "D",
    "seasonality_change": "o",
}


def plot_decomposition(
    fitted: Decomposition,
    alerts: pd.DataFrame | None = None,
    *,
    days: int = 28,
    title: str = "",
    log_scale: bool = False,
    unit: str = "",
) -> Figure:
    """Observed vs expected (with band) over the last `days`, seasonal and trend below.

    `alerts` is a replay's table (`events_frame`); each opened episode is a vertical line
    labelled with its kind. `log_scale` says the seasonal and trend parts are on the
    log1p scale the count model works on; `unit` names what the observed values are.
    """
    end = fitted.observed.index[-1]
    window = fitted.observed.index > end - pd.Timedelta(days=days)
    x = fitted.observed.index[window].to_pydatetime()
    figure = Figure(figsize=(11, 6.5), layout="constrained")
    top, middle, bottom = figure.subplots(3, 1, sharex=True, height_ratios=[3, 1, 1])
    top.fill_between(
        x,
        fitted.lower[window],
        fitted.upper[window],
        color="#9ecae1",
        alpha=0.5,
        linewidth=0,
        label="expected range",
    )
    top.plot(
        x, fitted.expected[window], color="#3182bd", linestyle="--", linewidth=1, label="expected"
    )
    top.plot(x, fitted.observed[window], color="#222222", linewidth=1, label="observed")
    if alerts is not None and len(alerts):
        opened = alerts[
            (alerts["status"] == "opened") & (alerts["at"] > end - pd.Timedelta(days=days))
        ]
        free: list[pd.Timestamp] = []  # per line of labels, where it is free again
        for n, (at, kind, direction) in enumerate(
            zip(opened["at"], opened["kind"], opened["direction"], strict=True)
        ):
            stamp = pd.Timestamp(at)
            moment = stamp.to_pydatetime()
            top.axvline(moment, color="#e6550d", linewidth=1.5, label="alert" if n == 0 else None)
            # Labels take the first of three lines with room; past that, the line alone.
            row = next((i for i, t in enumerate(free) if stamp >= t), len(free))
            if row >= 3:
                continue
            room = pd.Timedelta(days=days) * 0.09
            free[row : row + 1] = [stamp + room]
            # Near the right edge a label goes to the left of its line, to stay inside.
            right = stamp > end - room
            top.annotate(
                f"{kind.replace('_', ' ')} {'↑' if direction == 'up' else '↓'}",
                (moment, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(-3 if right else 3, -3 - 11 * row),
                textcoords="offset points",
                va="top",
                ha="right" if right else "left",
                fontsize=8,
                color="#a63603",
            )
    if min(fitted.observed[window].min(), fitted.lower[window].min()) >= 0:
        top.set_ylim(bottom=0)
    top.set_title(title, loc="left")
    if unit:
        top.set_ylabel(unit)
    top.legend(loc="upper left", fontsize=8, frameon=False, ncols=4, bbox_to_anchor=(0, -0.02))
    top.grid(alpha=0.3)
    suffix = " (log)" if log_scale else ""
    middle.plot(x, fitted.seasonal[window], color="#31a354", linewidth=1)
    middle.set_ylabel("seasonal" + suffix)
    bottom.plot(x, fitted.trend[window], color="#756bb1", linewidth=1)
    bottom.set_ylabel("trend" + suffix)
    for axes in (middle, bottom):
        axes.grid(alpha=0.3)
    locator = AutoDateLocator()
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    return figure


def plot_alerts(alerts: pd.DataFrame, *, title: str = "") -> Figure:
    """When each sensitivity would have alerted on each metric, and how often per kind.

    `alerts` is `Lantern.replay_alerts()`'s table. Above: one row per metric, a marker
    per alert (colour: sensitivity, shape: kind). Below: alerts per kind and sensitivity.
    """
    levels = [s for s in SENSITIVITY_COLORS if s in set(alerts["sensitivity"])]
    figure = Figure(figsize=(11, 8), layout="constrained")
    timeline, bars = figure.subplots(2, 1, height_ratios=[3, 2])
    names = _metric_names(alerts)
    rows = {name: n for n, name in enumerate(sorted(set(names), reverse=True))}
    offsets = {level: 0.25 * (n - (len(levels) - 1) / 2) for n, level in enumerate(levels)}
    for kind, marker in KIND_MARKERS.items():
        for level in levels:
            chosen = (alerts["sensitivity"] == level) & (alerts["kind"] == kind)
            if not chosen.any():
                continue
            timeline.scatter(
                [pd.Timestamp(a).to_pydatetime() for a in alerts.loc[chosen, "at"]],
                [rows[name] + offsets[level] for name in names[chosen]],
                marker=marker,
                s=40,
                color=SENSITIVITY_COLORS[level],
                edgecolors="white",
                linewidths=0.5,
            )
    timeline.set_yticks(list(rows.values()), list(rows.keys()), fontsize=8)
    timeline.set_ylim(-0.7, max(len(rows), 1) - 0.3)
    timeline.grid(axis="x", alpha=0.3)
    locator = AutoDateLocator()
    timeline.xaxis.set_major_locator(locator)
    timeline.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    seen = [k for k in KIND_MARKERS if k in set(alerts["kind"])]
    timeline.legend(
        handles=[Patch(color=SENSITIVITY_COLORS[level], label=level) for level in levels]
        + [
            Line2D([], [], linestyle="", marker=KIND_MARKERS[k], color="#555555", label=_words(k))
            for k in seen
        ],
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        fontsize=8,
        frameon=False,
    )
    timeline.set_title(title or "Alerts a replay would have opened", loc="left")

    kinds = [k for k in KINDS if k in set(alerts["kind"])]
    width = 0.8 / max(len(levels), 1)
    for n, level in enumerate(levels):
        rows_of = alerts[alerts["sensitivity"] == level]
        counts = [int((rows_of["kind"] == k).sum()) for k in kinds]
        positions = [i + (n - (len(levels) - 1) / 2) * width for i in range(len(kinds))]
        drawn = bars.bar(
            positions,
            counts,
            width,
            color=SENSITIVITY_COLORS[level],
            label=f"{level}: {len(rows_of)} alerts, {int(rows_of['sent'].sum())} messages",
        )
        bars.bar_label(drawn, fontsize=8)
    bars.set_xticks(range(len(kinds)), [_words(k) for k in kinds])
    bars.set_ylabel("alerts")
    bars.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    bars.grid(axis="y", alpha=0.3)
    return figure


def _metric_names(alerts: pd.DataFrame) -> pd.Series:
    """Each alert's metric as a person reads it; a kind is added where names repeat."""
    return alerts["title"].astype(str)


def _words(kind: str) -> str:
    return kind.replace("_", " ")
