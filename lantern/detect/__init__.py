"""Detection: from a metric's hourly series to episodes worth telling someone about.

The method
----------
1. **Gate.** Every series passes `validate_series`: a UTC hourly index, sorted, without
   duplicates; gaps are zeros for counts and missing for values and means.
2. **Training.** A metric is judged once it has `TRAINING_DAYS` (7) full days of data;
   `training_remaining` gives the dashboard's countdown.
3. **Model** (`model.fit_baseline`, refitted daily and after every lasting change). Counts
   are taken to ``log1p`` scale, where a product metric's rhythms are additive. Once two
   weeks are available, the trend is STL's with a weekly period, run on the daily means
   (the daily cycle cancels from a day's mean exactly; one value a day makes it some 15
   times cheaper than MSTL(24, 168) on the hours, with F1 within 0.004 on every bench seed);
   the cycle by hour of the week is then estimated from the detrended hours
   as STL would with a periodic seasonal (averages of each cycle-subseries): the mean by
   hour of day, plus the weekly rhythm by hour of week pulled towards its smoothed version
   as far as its own scatter across weeks says it is noise (empirical Bayes; James and
   Stein 1961). STL's own last cycle is an end-point estimate that, at a few events an
   hour, copies the noise of the last weeks into the forecast. With one to two weeks of
   history the same averages are taken from the hours as they are: one week cannot tell a
   trend from the days of the week (STL(24)'s trend follows them, and using it tripled the
   false alerts on the bench); values that can go negative keep STL(24)'s daily cycle with
   a shrunk day-of-week effect. The level and trend are a robust line through daily means
   of the deseasonalised series (Theil-Sen slope, median intercept) over the last 14 days
   or since the current normal began, so that a change in progress does not drag the
   baseline along. Expected counts are put back on the count scale with a mass correction.
   Counts are modelled as negative binomial, ``Var = mu + phi*mu²``, ``phi`` estimated by
   moments from the fit's residuals plus a floor for forecast error; the tails used for
   single hours are Poisson tails of a mean pushed two standard deviations along the gamma
   mixing distribution. A metric at 5 events an hour is thus judged by Poisson noise, one
   at 50,000 by its own over-dispersion, and scaling a busy series by ten changes nothing.
   Non-negative value metrics (sums such as revenue) are compound Poisson, with variance
   ``u`` times their mean: they are judged as the pseudo-counts ``values / u``, ``u``
   measured at every refit (`model.value_unit`), and reported back in their own unit.
4. **Detectors** (the package `detectors`, one module and one class per kind: `spike`,
   `low_run` (outage and drop), `level`, `trend`, `seasonality` and `cycle` (both
   seasonality change), all reading one `detectors.evidence.Evidence`; `detectors.registry`
   lists them in priority order; the kinds, their labels and episode rules are
   `kinds.DetectionKind`; verdict types and tail scores are in `verdicts`). Each needs
   significance *and* a relative change large enough to matter (the presets of
   `detectors.presets.SENSITIVITY`). To add a kind: a `DetectionKind` member, its module in
   `detectors` with a parameter dataclass, its parameters in every preset, its place in
   `detectors.registry`, and its description in docs/detection.md. Spikes,
   drops, outages and level shifts are also judged against the model's own recent error
   at the same hours (the three days before, and the same day a week before, whichever
   excuses more): a model that misjudges an hour of the day misjudges it every day, and
   that is not news. Quiet metrics get a wider band: an expected count is never taken
   below three events for a spike, and a window's log ratio carries 1.4 times its Poisson
   variance, for the error of a forecast resting on a few events an hour.
   **The metric's own tail.** Real metrics break any noise model in its tails (tweets,
   errors and requests burst every few days), so a verdict must also be rare for this
   metric: the same statistic over its last four weeks (episodes included, since the
   current normal began, less the day before the window) is fitted with an exponential
   tail above its upper decile, never falling faster than the model's own, and never
   rarer than the history itself says (`tails.rarity`, peaks over threshold as in SPOT;
   `Evidence.rare_total`). Spikes, drops and outages are judged on the model's uncapped
   tail score; level shifts and the 24-hour cycle test on their window statistic.
5. **Episodes** (`episodes`): one alert (``opened``) per episode. Short episodes (spike,
   drop, outage) are kept out of the model and end ``resolved``; one that lasts becomes a
   level shift. A level shift whose last hours are back at the old normal, every hour of
   them and significantly so, is ``resolved`` then. Otherwise a lasting change is
   ``accepted`` a day later and the model takes the new normal at once: it re-anchors at
   the change's start (and, once a week of it exists, the hours before the anchor are
   replaced by it in the fit), with the new level's uncertainty added to its error and
   shrinking as the new normal's days accumulate. Spikes, drops and outages are reported
   throughout; a further lasting change after 6 days (10 after a change of cycle or of
   trend).
   **Sensitivity is monotone by construction.** Episodes are found and followed at the
   most sensitive setting whatever a metric's (`detectors.graded_candidates`); each hour
   is graded by how many settings from ``high`` to ``medium`` to ``low`` find something
   there, and an episode is told once one of its hours (judged with its own hours in use)
   clears the metric's setting. The state never depends on the setting, so every episode
   told at ``low`` is told no later at ``medium``, and every one at ``medium`` at ``high``.
6. **Means** (``kind="mean"``): hourly averages of a measurement (load times, prices, CPU)
   are fitted on the Gaussian path with their own residual spread; a missing hour is
   missing, never zero. Given the events behind each hour (``counts``, and the variance
   of their values within it, ``within``), an hour of ``n`` events has the variance
   ``tau^2 + sigma_w^2 / n`` (`noise.mean_noise`: ``sigma_w^2`` pooled from the hours'
   sums of squares, else read from how day-over-day differences widen as ``n`` falls,
   as Davidian and Carroll (1987) estimate a variance function; ``tau^2`` by a robust
   moment equation), and every detector judges it by its own standard deviation, a window
   by its precision-weighted mean residual (`detectors.evidence.Evidence`): two
   checkouts at night are judged by their own wide spread, three hundred at noon by their
   narrow one.
7. **Honest in time.** The verdict for an hour uses data up to that hour only; the model
   that judges it was fitted on earlier hours. `advance` is the only judge, for the
   scheduler, `lantern replay` and notebooks alike.

References
----------
Cleveland, R. B., Cleveland, W. S., McRae, J. E. and Terpenning, I. (1990). STL: a
    seasonal-trend decomposition procedure based on loess. Journal of Official
    Statistics 6, 3-73.
Bandara, K., Hyndman, R. J. and Bergmeir, C. (2021). MSTL: a seasonal-trend decomposition
    algorithm for time series with multiple seasonal patterns. arXiv:2107.13462.
James, W. and Stein, C. (1961). Estimation with quadratic loss. Proc. Fourth Berkeley
    Symposium on Mathematical Statistics and Probability 1, 361-379.
Anscombe, F. J. (1948). The transformation of Poisson, binomial and negative-binomial
    data. Biometrika 35, 246-254.
Siffer, A., Fouque, P.-A., Termier, A. and Largouet, C. (2017). Anomaly detection in
    streams with extreme value theory. KDD '17, 1067-1075.
Davidian, M. and Carroll, R. J. (1987). Variance function estimation. Journal of the
    American Statistical Association 82, 1079-1091.
Hochenbaum, J., Vallis, O. S. and Kejariwal, A. (2017). Automatic anomaly detection in
    the cloud via statistical learning. arXiv:1704.07706.
"""

from lantern.detect.decompose import Decomposition, decompose
from lantern.detect.detectors import SENSITIVITY
from lantern.detect.expected import Expectation, replay_expected
from lantern.detect.kinds import KINDS, PERSISTENT, DetectionKind
from lantern.detect.model import Baseline, fit_baseline
from lantern.detect.series import (
    TRAINING_DAYS,
    SeriesError,
    SeriesKind,
    training_remaining,
    validate_counts,
    validate_series,
)
from lantern.detect.state import EpisodeEvent, MetricState, Sensitivity, feedback_bar, new_state
from lantern.detect.stream import (
    JudgedHours,
    advance,
    advance_array,
    advance_judged,
    replay_series,
    score_batch,
    score_batch_judged,
)
from lantern.detect.verdicts import Detection

__all__ = [
    "KINDS",
    "PERSISTENT",
    "SENSITIVITY",
    "TRAINING_DAYS",
    "Baseline",
    "Decomposition",
    "Detection",
    "DetectionKind",
    "EpisodeEvent",
    "Expectation",
    "JudgedHours",
    "MetricState",
    "Sensitivity",
    "SeriesError",
    "SeriesKind",
    "advance",
    "advance_array",
    "advance_judged",
    "decompose",
    "feedback_bar",
    "fit_baseline",
    "new_state",
    "replay_expected",
    "replay_series",
    "score_batch",
    "score_batch_judged",
    "training_remaining",
    "validate_counts",
    "validate_series",
]
