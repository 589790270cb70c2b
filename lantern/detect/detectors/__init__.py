"""The detectors: evidence, hour by hour, that a metric left its baseline, and of what kind.

Every detector reads one `Evidence` (the observed and expected arrays of the judged hours
and the lookback before them, with their window sums) and returns, for each judged hour,
a `Candidate` or None. A verdict needs both *significance* under the noise model (a
Poisson-gamma tail for counts and for non-negative values as pseudo-counts, a Gaussian one
for values that can go negative) and a *relative change* large enough to matter; the
second is what keeps a metric at 50,000 events an hour, where every wobble is
"significant", from paging anyone. What each sensitivity asks of each detector is in
`presets.SENSITIVITY`, one frozen parameter dataclass per detector.

=========================  ==============================  ================================
module                     class                           kinds
=========================  ==============================  ================================
`evidence`                 `Evidence` (shared window sums)
`spike`                    `SpikeDetector` (and bursts)    spike
`low_run`                  `LowRunDetector`                outage, drop
`level`                    `LevelShiftDetector`            level_shift (outage near zero)
`trend`                    `TrendChangeDetector`           trend_change
`seasonality`              `SeasonalityChangeDetector`     seasonality_change (24 h)
`cycle`                    `CycleChangeDetector`           seasonality_change (week on week)
=========================  ==============================  ================================

`registry` lists them in priority order: where several find something at the same hour,
the first one's verdict is kept. A level shift is then renamed a trend change where the
metric has been bending away for days (`TrendChangeDetector.rename`).

To add a kind: add it to `DetectionKind` (lantern/detect/kinds.py: value, label, phrase,
whether it persists, its short-episode limit), write its module here with a parameter
dataclass and a class with ``kinds`` and ``scan(evidence)``, add its parameters to every
preset in `presets`, put it in `registry` at its priority, and describe it in
docs/detection.md.

References
----------
Page, E. S. (1954). Continuous inspection schemes. Biometrika 41, 100-115.
McCullagh, P. and Nelder, J. A. (1989). Generalized Linear Models, 2nd ed. Chapman & Hall.
(Lawless 1987, for the count tails, is cited in `verdicts`.)
"""

from __future__ import annotations

from typing import Protocol

from lantern.detect.detectors.cycle import CycleChangeDetector, CycleParams
from lantern.detect.detectors.evidence import WINDOW_ERROR, Evidence
from lantern.detect.detectors.level import LevelParams, LevelShiftDetector
from lantern.detect.detectors.low_run import LowRunDetector, LowRunParams
from lantern.detect.detectors.presets import SENSITIVITY, Preset
from lantern.detect.detectors.seasonality import SeasonalityChangeDetector, SeasonalityParams
from lantern.detect.detectors.spike import SpikeDetector, SpikeParams
from lantern.detect.detectors.trend import TrendChangeDetector, TrendParams
from lantern.detect.kinds import DetectionKind
from lantern.detect.model import FIT_DAYS
from lantern.detect.series import DAY, WEEK
from lantern.detect.verdicts import Candidate

# hours before the first judged one: the four weeks the model is fitted on, for the tails
# (`Evidence.rare_total`); the trend test reads its fourteen days from the end of them
LOOKBACK = FIT_DAYS * DAY


class Detector(Protocol):
    """What the registry asks of a detector."""

    @property
    def kinds(self) -> tuple[DetectionKind, ...]:
        """The kinds its candidates can be."""
        ...

    def scan(self, evidence: Evidence) -> list[Candidate | None]:
        """The candidate of each judged hour, or None."""
        ...


def registry(preset: Preset) -> tuple[Detector, ...]:
    """Every detector, in priority order: at an hour several find, the first one's verdict wins."""
    return (
        SpikeDetector(preset.spike),
        LowRunDetector(preset.low_run),
        LevelShiftDetector(preset.level),
        TrendChangeDetector(preset.trend),
        SeasonalityChangeDetector(preset.seasonality, level_change=preset.level.change),
        CycleChangeDetector(preset.cycle),
    )


def candidates(evidence: Evidence, preset: Preset) -> list[Candidate | None]:
    """The verdict of each judged hour, or None: the first detector's in `registry` order."""
    scans: list[list[Candidate | None]] = []
    trend, fit = None, None
    for detector in registry(preset):
        if isinstance(detector, TrendChangeDetector):
            # its fit is kept for the rename rule below
            trend, fit = detector, detector.fit(evidence)
            scans.append(fit.candidates)
        else:
            scans.append(detector.scan(evidence))
    out: list[Candidate | None] = []
    for j in range(evidence.judged):
        found = next((scan[j] for scan in scans if scan[j] is not None), None)
        if found is not None and trend is not None and fit is not None:
            found = trend.rename(found, fit, j)
        out.append(found)
    return out


def graded_candidates(
    evidence: Evidence,
) -> tuple[list[list[Candidate | None]], list[int]]:
    """Each judged hour's verdict at each setting, from ``high`` to ``medium`` to ``low``
    (`state.LEVELS`), and its grade: how many of them find something there, each only where
    the more sensitive ones do (0 to 2; -1 where none does).

    One set of episodes is found and followed at the most sensitive setting whatever a
    metric's, and each is told at the settings its hours clear, so that every episode told
    at ``low`` is told at ``medium`` and every one at ``medium`` at ``high``: sensitivity is
    monotone by construction. The stricter settings are asked only where the laxer one
    found something (a list of None stands for a setting not asked).
    """
    found = candidates(evidence, SENSITIVITY["high"])
    by_level: list[list[Candidate | None]] = [found]
    grades = [-1 if c is None else 0 for c in found]
    for level, name in enumerate(("medium", "low"), start=1):
        if not any(g == level - 1 for g in grades):
            by_level.append([None] * len(found))
            continue
        stricter = candidates(evidence, SENSITIVITY[name])
        by_level.append(stricter)
        grades = [
            level if g == level - 1 and c is not None else g
            for g, c in zip(grades, stricter, strict=True)
        ]
    return by_level, grades


__all__ = [
    "DAY",
    "LOOKBACK",
    "SENSITIVITY",
    "WEEK",
    "WINDOW_ERROR",
    "CycleChangeDetector",
    "CycleParams",
    "Detector",
    "Evidence",
    "LevelParams",
    "LevelShiftDetector",
    "LowRunDetector",
    "LowRunParams",
    "Preset",
    "SeasonalityChangeDetector",
    "SeasonalityParams",
    "SpikeDetector",
    "SpikeParams",
    "TrendChangeDetector",
    "TrendParams",
    "candidates",
    "graded_candidates",
    "registry",
]
