"""A group of ingest requests on its way to the database: each judged, and what it did."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lantern.breakdowns.dimensions import Spec
from lantern.ingest.events import Verdict

NO_BREAKDOWNS = Spec(())


@dataclass(slots=True)
class IngestResult:
    """What a request did: counts, and each rejected event's position and reason."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    over_cap: int = 0


@dataclass(slots=True)
class Judged:
    """One request's verdicts, waiting to be committed."""

    source_id: int
    verdicts: list[Verdict]
    received_at: datetime
    metric_cap: int
    spec: Spec = NO_BREAKDOWNS  # the source's breakdown dimensions when it was judged
