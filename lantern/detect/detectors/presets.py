"""What each sensitivity setting asks of each detector (scores are -log10 p)."""

from __future__ import annotations

from dataclasses import dataclass

from lantern.detect.detectors.cycle import CycleParams
from lantern.detect.detectors.level import LevelParams
from lantern.detect.detectors.low_run import LowRunParams
from lantern.detect.detectors.seasonality import SeasonalityParams
from lantern.detect.detectors.spike import SpikeParams
from lantern.detect.detectors.trend import TrendParams


@dataclass(frozen=True)
class Preset:
    """One sensitivity setting: every detector's parameters."""

    spike: SpikeParams
    low_run: LowRunParams
    level: LevelParams
    trend: TrendParams
    seasonality: SeasonalityParams
    cycle: CycleParams


SENSITIVITY: dict[str, Preset] = {
    "low": Preset(
        spike=SpikeParams(
            score=9,
            ratio=3.0,
            min_events=10,
            rarity=4.5,
            value_change=0.4,
            value_range=1.0,
            value_far=3.0,
        ),
        low_run=LowRunParams(outage_score=7, drop_score=10, drop_ratio=0.35, rarity=4.5),
        level=LevelParams(score=9, change=0.40, rarity=6.0),
        trend=TrendParams(score=9, slope=0.05),
        seasonality=SeasonalityParams(score=12, amplitude=0.35, rarity=6.0),
        cycle=CycleParams(score=12, amplitude=0.1),
    ),
    "medium": Preset(
        spike=SpikeParams(
            score=7,
            ratio=2.5,
            min_events=10,
            rarity=4.0,
            value_change=0.3,
            value_range=0.6,
            value_far=2.0,
        ),
        low_run=LowRunParams(outage_score=5.5, drop_score=8, drop_ratio=0.45, rarity=4.0),
        level=LevelParams(score=7, change=0.30, rarity=5.0),
        trend=TrendParams(score=6, slope=0.035),
        seasonality=SeasonalityParams(score=11, amplitude=0.25, rarity=5.0),
        cycle=CycleParams(score=8, amplitude=0.06),
    ),
    "high": Preset(
        spike=SpikeParams(
            score=5.5,
            ratio=2.0,
            min_events=4,
            rarity=3.5,
            value_change=0.2,
            value_range=0.4,
            value_far=1.5,
        ),
        low_run=LowRunParams(outage_score=4.5, drop_score=6, drop_ratio=0.55, rarity=3.5),
        level=LevelParams(score=5.5, change=0.22, rarity=4.5),
        trend=TrendParams(score=5.5, slope=0.025, student=False),
        seasonality=SeasonalityParams(score=7, amplitude=0.18, rarity=4.5),
        cycle=CycleParams(score=6, amplitude=0.05),
    ),
}
