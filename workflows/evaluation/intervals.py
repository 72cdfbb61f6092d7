"""One code path for the 80% and 95% intervals: the report's and the served ones are the same intervals.

`conformal_intervals` turns one model's out-of-sample forecast-log rows (its return forecast,
its predictive sd and the outcome, hour by hour in time order) into adaptive conformal
intervals (Gibbs & Candes 2021, `evaluation.conformal`): forecast +- q_t x sd_t, q_t the
conformal quantile of the earlier hours' scores |y - forecast| / sd at a level nudged after
every hour towards nominal coverage. The report's interval evaluation
(`evidence.interval_calibration`) scores these intervals; `latest_forecast` serves the next
step of the same procedure (`ConformalIntervals.next_interval`) on the same rows. Because each
hour's interval depends only on earlier hours, the interval served for hour t is the report's
interval for hour t once the log holds the hours before t and the served model is the one that
forecast hour t in the log (the newest period's model).

Three choices, each the same for both:

* Scale: the model's own predictive sd. The volatility model's next-hour sd is the
  better-founded scale in hindsight, but the forecast log holds it only for hours whose
  outcome has landed: for the hour being served it would need a second checkpoint run at
  serving time, and a scale present for the reported hours but not for the served one would
  make the two intervals differ exactly where it matters. A model without a predictive sd gets
  no interval.
* Warm-up: the first `WARM_UP` hours of the log only calibrate. A fixed count, not a share of
  the hours: with a share, the interval at an hour would change as the log grows, and the
  interval served at t could not equal the one reported for t later.
* History: the whole forecast log up to the hour (every period, pooled in time order), at most
  `WINDOW` scores per quantile; the miscoverage level carries over every hour since the warm-up.
"""

from dataclasses import dataclass

import numpy as np

from workflows.evaluation.conformal import adaptive_conformal_state, clipped_quantile, scaled_scores

LEVELS = (0.80, 0.95)
WARM_UP = 200  # the first hours of the forecast log only calibrate (no interval is reported or served before)
GAMMA = 0.005  # adaptive conformal step of the miscoverage level
WINDOW = 1000  # scores of at most this many earlier hours enter a quantile
SD_FLOOR = 1e-12  # a predictive sd below this is taken as this (a zero sd would make every score infinite)
SCALE = "model's own sd"  # its predictive sd


@dataclass(frozen=True)
class ConformalIntervals:
    """One level's adaptive conformal intervals over hours 0..n-1 (NaN before `start`) and the state after them."""

    level: float
    start: int
    lower: np.ndarray
    upper: np.ndarray
    quantile: np.ndarray  # q_t in sds, NaN before start
    q_next: float  # the quantile for the hour after the last
    level_next: float  # 1 - the adapted miscoverage level it is taken at

    def next_interval(self, forecast: float, sd: float) -> tuple[float, float]:
        """The interval for the hour after the last: forecast +- q_next x sd."""
        half = self.q_next * max(float(sd), SD_FLOOR)
        return float(forecast) - half, float(forecast) + half

    def tested(self) -> slice:
        """The hours with an interval (after the warm-up)."""
        return slice(self.start, None)


def sd_of(variance: np.ndarray) -> np.ndarray:
    """The predictive sd of a forecast-log variance, floored at `SD_FLOOR`."""
    return np.maximum(np.sqrt(np.maximum(np.asarray(variance, dtype=float), 0.0)), SD_FLOOR)


def conformal_intervals(
    y: np.ndarray, forecast: np.ndarray, sd: np.ndarray, level: float, start: int = WARM_UP
) -> ConformalIntervals:
    """Adaptive conformal intervals at `level` for hours start.. of one model's rows in time order, and the
    procedure's next step. `start`: `WARM_UP` for the forecast log (the report and the served interval); the
    gate passes its own share of a candidate's evidence hours. Raises when start leaves no hour before it."""
    y, f = np.asarray(y, dtype=float), np.asarray(forecast, dtype=float)
    s = np.maximum(np.asarray(sd, dtype=float), SD_FLOOR)
    if not 1 <= start <= y.size:
        raise ValueError(
            f"conformal intervals: {y.size} hours, warm-up {start}; at least {max(start, 1)} hours with an outcome "
            "are needed before any interval"
        )
    lower, upper, quantile, alpha_next = adaptive_conformal_state(y, f, s, level, start, GAMMA, WINDOW)
    q_next = clipped_quantile(scaled_scores(y, f, s)[max(0, y.size - WINDOW) :], alpha_next)
    return ConformalIntervals(level, start, lower, upper, quantile, q_next, 1.0 - alpha_next)


def log_intervals(y: np.ndarray, forecast: np.ndarray, variance: np.ndarray) -> dict[float, ConformalIntervals] | None:
    """`conformal_intervals` at 80% and 95% over forecast-log rows (predictive variance, as the log stores it);
    None when the log holds fewer than `WARM_UP` hours (with exactly `WARM_UP`, only the next hour's interval)."""
    if len(y) < WARM_UP:
        return None
    sd = sd_of(variance)
    return {level: conformal_intervals(y, forecast, sd, level) for level in LEVELS}


@dataclass(frozen=True)
class IntervalHistory:
    """One model kind's out-of-sample forecast-log rows in time order (`forecast_log.interval_history`): what
    the report evaluates and the served interval is calibrated on."""

    name: str
    origin_ts: np.ndarray  # datetime64, the last input hour; the hour forecast is the next
    y: np.ndarray  # the outcome (log return of the hour forecast)
    forecast: np.ndarray
    variance: np.ndarray  # the model's predictive variance

    def before(self, target_ts: np.datetime64) -> "IntervalHistory":
        """The rows whose forecast hour is before `target_ts` (an hour's interval rests on these only)."""
        keep = self.origin_ts + np.timedelta64(1, "h") < target_ts
        return IntervalHistory(self.name, self.origin_ts[keep], self.y[keep], self.forecast[keep], self.variance[keep])
