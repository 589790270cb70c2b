"""The alert's chart: the last days observed against the expected band, the anomaly marked."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
from matplotlib.dates import DateFormatter, DayLocator, HourLocator
from matplotlib.figure import Figure

from lantern.notify.types import ChartData


def render_chart(chart: ChartData, title: str) -> bytes:
    """A PNG of observed vs expected with its band; the anomaly's hours shaded, axes labelled."""
    figure = Figure(figsize=(8, 3.2), dpi=100)
    axes = figure.add_subplot()
    x = chart.index.to_pydatetime()
    axes.fill_between(
        x, chart.lower, chart.upper, color="#9ecae1", alpha=0.5, linewidth=0, label="expected range"
    )
    axes.plot(x, chart.expected, color="#3182bd", linewidth=1, linestyle="--", label="expected")
    axes.plot(x, chart.observed, color="#222222", linewidth=1.3, label="observed")
    axes.axvspan(
        chart.anomaly_start.to_pydatetime(),  # type: ignore[arg-type]
        chart.anomaly_end.to_pydatetime(),  # type: ignore[arg-type]
        color="#e6550d",
        alpha=0.2,
        label="anomaly",
    )
    axes.set_title(title, fontsize=10, loc="left")
    axes.set_ylabel(chart.unit, fontsize=8)
    axes.set_xlabel("time (UTC)", fontsize=8)
    axes.xaxis.set_major_locator(DayLocator(tz="UTC"))
    axes.xaxis.set_major_formatter(DateFormatter("%a %d %b", tz="UTC"))
    axes.xaxis.set_minor_locator(HourLocator(byhour=[12], tz="UTC"))
    axes.xaxis.set_minor_formatter(DateFormatter("%H:%M", tz="UTC"))
    axes.tick_params(axis="x", which="both", labelsize=7)
    axes.tick_params(axis="x", which="minor", colors="#666666")
    if min(chart.observed.min(initial=0), chart.lower.min(initial=0)) >= 0:
        axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=7, ncols=4, frameon=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
