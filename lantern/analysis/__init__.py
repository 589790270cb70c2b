"""Lantern from a notebook: the service's series, detector and insights as pandas objects.

    from lantern.analysis import connect
    lantern = connect("sqlite:///lantern-data/lantern.db")
    lantern.metrics(source="web")                      # one row per metric
    signups = lantern.series("Signed Up")              # hourly pandas Series
    lantern.frame(["Signed Up", "Checkout"])           # several, one column each
    lantern.breakdown("Signed Up", "os")               # one column per value of a dimension
    lantern.replay("Signed Up", sensitivity="high")    # what detection would have said
    lantern.plot("Signed Up")                          # decomposition and alerts
    alerts = lantern.replay_alerts(source="web")       # every sensitivity, every metric
    alert_table(alerts)                                # alerts per kind and sensitivity
    lantern.insights()                                 # insights as a DataFrame
    weekly(lantern.insights(), by="severity")          # insights per week

Everything here reads the database the service writes and runs the same detection code
(`lantern.detect`) with the same per-metric settings, so a replay at the workspace's
sensitivity opens exactly the insights the service recorded.
"""

from lantern.analysis.plots import plot_alerts, plot_decomposition
from lantern.analysis.reader import Lantern, MetricInfo, MetricRef, connect
from lantern.analysis.tables import (
    SENSITIVITIES,
    alert_table,
    events_frame,
    mark_sent,
    metric_titles,
    weekly,
)

__all__ = [
    "SENSITIVITIES",
    "Lantern",
    "MetricInfo",
    "MetricRef",
    "alert_table",
    "connect",
    "events_frame",
    "mark_sent",
    "metric_titles",
    "plot_alerts",
    "plot_decomposition",
    "weekly",
]
