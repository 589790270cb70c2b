"""Outages and drops: a run of consecutive low hours, judged on its total."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lantern.detect.detectors.evidence import Evidence
from lantern.detect.kinds import DetectionKind
from lantern.detect.verdicts import Candidate, down_score, score_from_z

OUTAGE_SHARE = 0.15  # a run at most this share of its expectation is an outage (near zero)
DROP_MIN_HOURS = 2  # one low hour is noise; a drop lasts at least this long
DROP_MAX_HOURS = 6  # a longer low run is left to the level-shift windows
DROP_DEPTH = 0.75  # a drop's total must be this much deeper than `LowRunParams.drop_ratio`


@dataclass(frozen=True)
class LowRunParams:
    """What a sensitivity asks of an outage or a drop."""

    outage_score: float  # least -log10 p of an outage's total
    drop_score: float  # least -log10 p of a drop's total
    drop_ratio: float  # an hour below this share of its expectation is low
    rarity: float  # least -log10 p of the run's total against the metric's own recent weeks


class LowRunDetector:
    """Outages and drops: the lower tail of a run of low hours' total.

    The run is the consecutive hours up to the judged one each below `drop_ratio` times its
    expectation; its total is judged by the lower tail of Poisson(mu * exp(-2 sqrt(phi)))
    (Lawless 1987; see `verdicts.down_score`), or a Gaussian tail for values (of the run's
    precision-weighted residual where a mean's hours have their own spread,
    `Evidence.run_z`). Near zero (`OUTAGE_SHARE`) it is an outage, otherwise a drop of 2 to
    6 hours. A count's expectation is lowered to the model's own recent error at those
    hours (`Evidence.reference`) when the model has been overestimating them, and the run
    must stand out against the metric's own recent weeks (`Evidence.rare_total`).
    """

    kinds = (DetectionKind.OUTAGE, DetectionKind.DROP)

    def __init__(self, params: LowRunParams) -> None:
        self.params = params

    def scan(self, evidence: Evidence) -> list[Candidate | None]:
        """The outage or drop ending at each judged hour, or None."""
        # a run ends at an hour only where that hour is low itself: the rest are None at once
        hours = slice(evidence.first, evidence.end)
        low = evidence.usable[hours] & (
            evidence.x[hours] < self.params.drop_ratio * evidence.mu[hours]
        )
        return [
            self.at(evidence, evidence.first + j) if is_low else None
            for j, is_low in enumerate(low.tolist())
        ]

    def at(self, evidence: Evidence, i: int) -> Candidate | None:
        """An outage or a drop run ending at hour i."""
        if not evidence.usable[i]:
            return None
        p, dispersion = self.params, evidence.dispersion
        start = i
        while (
            start > 0
            and evidence.usable[start]
            and evidence.x[start] < p.drop_ratio * evidence.mu[start]
        ):
            start -= 1
        if start == i:
            return None
        s = slice(start + 1, i + 1)
        total, expected = evidence.x[s].sum(), evidence.mu[s].sum()
        if evidence.kind == "value":
            score = float(score_from_z(np.array([evidence.run_z(start + 1, i + 1)]))[0])
        else:
            score = float(
                down_score(np.array([total]), np.array([expected]), dispersion, "count")[0]
            )
        hours = i - start
        found = self.judge(total, expected, score, hours)
        if found is not None and evidence.kind == "count":
            ref = evidence.reference(start + 1, i + 1, up=False)
            if ref < 1.0:
                expected *= ref
                score = float(
                    down_score(np.array([total]), np.array([expected]), dispersion, "count")[0]
                )
                found = self.judge(total, expected, score, hours)
        if found is None or not evidence.rare_total(i, hours, up=False, least=p.rarity):
            return None
        return found

    def judge(self, total: float, expected: float, score: float, hours: int) -> Candidate | None:
        """An outage or a drop of ``hours`` low hours, or None."""
        p = self.params
        if total <= OUTAGE_SHARE * expected and score >= p.outage_score:
            return Candidate(
                DetectionKind.OUTAGE.value,
                "down",
                hours - 1,
                total / hours,
                expected / hours,
                score,
            )
        if (
            score >= p.drop_score
            and DROP_MIN_HOURS <= hours <= DROP_MAX_HOURS
            and total <= p.drop_ratio * DROP_DEPTH * expected
        ):
            return Candidate(
                DetectionKind.DROP.value, "down", hours - 1, total / hours, expected / hours, score
            )
        return None
