"""Level shifts: the ratio of observed to expected over the last 6, 12 or 24 hours."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lantern.detect.detectors.evidence import Evidence
from lantern.detect.detectors.low_run import OUTAGE_SHARE
from lantern.detect.kinds import DetectionKind
from lantern.detect.verdicts import Candidate, score_from_z

LEVEL_WINDOWS = (3, 6, 12, 24)  # hours; the shortest window that finds a shift names its start
THIRD_AGREEMENT = 2  # each third of a window must move by at least 1/this of the least change
_LENGTHS = np.array(LEVEL_WINDOWS)[:, None]


@dataclass(frozen=True)
class LevelParams:
    """What a sensitivity asks of a level shift."""

    score: float  # least -log10 p of the window's log ratio
    change: float  # least |log ratio| of observed to expected over the window
    rarity: float  # least -log10 p of the window against the metric's own recent weeks


class LevelShiftDetector:
    """Level shifts: the log ratio of a window's observed to expected total, and its z.

    Over the last 6, 12 or 24 hours, the log of observed over expected with the variance of
    a sum of negative-binomial counts (`LOW_VOLUME_ERROR` times its Poisson part, for the
    forecast error of a quiet metric) plus a model-error term, never more significant than
    the Poisson likelihood ratio itself (`Evidence.window_z`). Each third of the window must
    agree, so that one spike cannot pass for a shift, and for counts the change left after
    the model's own recent error at the same hours (`Evidence.window_reference`) must still
    be large enough, and the window must be rarely this far off for this metric
    (`Evidence.rare_total`, against its last four weeks). The variance of a sum of counts
    is the negative binomial's (Lawless 1987); the windows follow the CUSUM idea of judging
    a run on its sum (Page 1954). A window fallen to `OUTAGE_SHARE` of its expectation or
    less is the metric stopping, and is reported as an outage (hours that the low-run
    detector's own tests did not yet tell, such as a quiet revenue's first hours without
    an order).
    """

    kinds = (DetectionKind.LEVEL_SHIFT, DetectionKind.OUTAGE)

    def __init__(self, params: LevelParams) -> None:
        self.params = params

    def scan(self, evidence: Evidence) -> list[Candidate | None]:
        """Level shifts over the last 6, 12 and 24 hours, each third of the window agreeing."""
        p = self.params
        out: list[Candidate | None] = [None] * evidence.judged
        # every window length at once, a row each
        lrs, zs, observed, expected = evidence.window_z(_LENGTHS)
        scores = score_from_z(zs)
        hits = (np.abs(lrs) >= p.change) & (scores >= p.score)
        for row in np.flatnonzero(hits.any(axis=1)):
            # (most hours: no window to look at the thirds of)
            k = LEVEL_WINDOWS[row]
            lr, z, obs, exp = lrs[row], zs[row], observed[row], expected[row]
            score, hit = scores[row], hits[row]
            third = k // 3
            parts = np.stack(
                [evidence.window_log_ratio(third, back) for back in (0, third, 2 * third)]
            )
            hit &= (np.sign(lr) * parts >= p.change / THIRD_AGREEMENT).all(axis=0)
            if evidence.kind == "count" and hit.any():
                # the same window on the three days before and a week before: how the model
                # fared there; it only ever shrinks the change, so hits alone are re-judged
                high, low = evidence.window_reference(k)
                lr = np.where(
                    lr > 0,
                    np.maximum(lr - np.maximum(high, 0), 0),
                    np.minimum(lr - np.minimum(low, 0), 0),
                )
                hit &= np.abs(lr) >= p.change
            for j in np.flatnonzero(hit):
                if out[j] is not None:
                    continue  # a shorter window found this hour's shift first
                # a window as far off as this must be rare for this metric, not only for
                # the model: real metrics wander more than any noise model allows
                hit[j] = evidence.rare_total(
                    evidence.first + int(j), k, up=bool(z[j] > 0), least=p.rarity, lasting=True
                )
            for j in np.flatnonzero(hit):
                if out[j] is None:
                    direction = "up" if lr[j] > 0 else "down"
                    # a level that fell to near nothing is the metric stopping: an outage
                    stopped = direction == "down" and obs[j] <= OUTAGE_SHARE * exp[j]
                    kind = DetectionKind.OUTAGE if stopped else DetectionKind.LEVEL_SHIFT
                    out[j] = Candidate(
                        kind.value,
                        direction,
                        k - 1,
                        obs[j],
                        exp[j],
                        float(score[j]),
                    )
        return out
