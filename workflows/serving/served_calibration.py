"""Calibration of what the gate serves besides the point forecast, judged on the gate's hours.

Intervals. The served 80% and 95% intervals are adaptive conformal intervals scaled by
the model's own predictive standard deviation (`evaluation.intervals.conformal_intervals`,
Gibbs & Candes 2021): forecast +- q x sd, q the conformal quantile of the earlier hours'
scores |y - forecast| / sd at a level nudged after every hour towards nominal coverage.
`latest_forecast` serves the procedure's next step over the whole forecast log of the served
kind, the same intervals the report evaluates. The gate runs the same function over the
candidate's evidence hours in time order (its forecasts, recomputed): the first
`CALIBRATION_SHARE` only calibrate (the forecast log's fixed warm-up of 200 hours would leave
nothing to test on a hundred evidence hours), and on the rest the coverage is tested with
Kupiec's unconditional and Christoffersen's independence tests, with Monte Carlo p-values
(`stats.calibration.coverage_test_mc`: the chi-squared ones are poor at the three or four misses
a 95% interval has in a hundred hours).

Why online rather than one split (calibrate on one half, test on the other): the tests
treat the quantile as known, and a quantile estimated on as many hours as it is tested on
doubles the variance of the coverage, so the split refused well-calibrated
intervals about a third of the time (measured: a model with the exact volatility, 400
simulated series of 200 or 2000 hours, 32% and 38% refused). Online, each interval uses
every earlier hour and the level corrects itself: 5% and 8% refused (300 series; four
tests at 5% each).

Direction probabilities. The Brier score of the served DOWN / STABLE / UP probabilities
against the base-rate forecast (the class frequencies of the same hours, the best
constant forecast in hindsight), with a one-sided paired test of the per-hour Brier
differences (Diebold-Mariano, HLN, horizon 1): they fail when the base rate is
significantly better.

One family. The gate's calibration tests (Kupiec and Christoffersen at 80% and 95%, the Brier
test) are one family, Holm-adjusted (`calibration_family`): a calibrated candidate is refused by
any of them at most alpha of the time, where four unadjusted tests refused exactly calibrated
intervals 12.6% of the time on about 70 hours.
"""

from dataclasses import dataclass

import numpy as np

from workflows.evaluation.intervals import LEVELS, conformal_intervals
from workflows.stats.calibration import MC_DRAWS, brier_skill, coverage_test, coverage_test_mc
from workflows.stats.significance import dm_test, holm

CALIBRATION_SHARE = 0.3  # the first 30% of the gate's hours only calibrate; the coverage is tested on the rest
Z = {0.80: 1.2816, 0.95: 1.9600}  # Gaussian quantiles of the raw (uncalibrated) intervals


@dataclass(frozen=True)
class IntervalCheck:
    """One interval level on the gate's hours."""

    level: float
    calibration_hours: int
    tested_hours: int
    q_served: float  # the procedure's next quantile (in sds) after these hours (served: `evaluation.intervals`)
    level_served: float  # the level it is taken at (1 - the adapted miscoverage level)
    coverage: float  # of the adaptive conformal intervals on the tested hours
    kupiec_p: float  # Monte Carlo p-values (`coverage_test_mc`), before the family's adjustment
    christoffersen_p: float
    raw_coverage: float  # of the Gaussian forecast +- z x sd on the same tested hours, before calibration

    def failures(self, kupiec_adjusted: float, christoffersen_adjusted: float, alpha: float) -> list[str]:
        """Why this interval fails calibration, given its two tests' family-adjusted p-values (empty: it passes)."""
        pct = f"{self.level:.0%}"
        where = f"on {self.tested_hours} hours: coverage {self.coverage:.1%}"
        out = []
        if kupiec_adjusted < alpha:
            out.append(
                f"the served {pct} interval fails Kupiec's coverage test {where} (Monte Carlo p = {self.kupiec_p:.3g}, "
                f"Holm-adjusted {kupiec_adjusted:.3g} < {alpha})"
            )
        if christoffersen_adjusted < alpha:
            out.append(
                f"the served {pct} interval fails Christoffersen's independence test {where}, misses cluster "
                f"(Monte Carlo p = {self.christoffersen_p:.3g}, Holm-adjusted {christoffersen_adjusted:.3g} < {alpha})"
            )
        return out


def _adaptive(y: np.ndarray, f: np.ndarray, s: np.ndarray, level: float, draws: int = MC_DRAWS):
    """`conformal_intervals` over the gate's hours in time order (the report's and the served procedure, its
    warm-up the gate's `CALIBRATION_SHARE`): the calibration hours, the coverage test of the intervals after
    them, and the procedure's next step (quantile, level) for the hour after the last."""
    cut = max(1, int(CALIBRATION_SHARE * len(y)))
    if cut >= len(y) - 1:
        raise ValueError(f"interval calibration needs at least 3 hours, got {len(y)}")
    path = conformal_intervals(y, f, s, level, start=cut)
    miss = (y[cut:] < path.lower[cut:]) | (y[cut:] > path.upper[cut:])
    tested = coverage_test_mc(miss, level, draws=draws, seed=round(1000 * level))
    return cut, tested, path.q_next, path.level_next


def _arrays(y, forecast, sd):
    y, f, s = (np.asarray(a, dtype=float) for a in (y, forecast, sd))
    return y, f, np.maximum(s, 1e-12)


def interval_checks(
    y: np.ndarray, forecast: np.ndarray, sd: np.ndarray, draws: int = MC_DRAWS
) -> dict[float, IntervalCheck]:
    """Adaptive conformal at 80% and 95% on hours in time order (module docstring), keyed by level; `draws`:
    Monte Carlo draws per p-value."""
    y, f, s = _arrays(y, forecast, sd)
    out = {}
    for level in LEVELS:
        cut, tested, q_next, level_next = _adaptive(y, f, s, level, draws)
        t = slice(cut, None)
        raw = coverage_test(y[t], f[t] - Z[level] * s[t], f[t] + Z[level] * s[t], level)
        out[level] = IntervalCheck(
            level=level,
            calibration_hours=cut,
            tested_hours=tested.n,
            q_served=q_next,
            level_served=level_next,
            coverage=tested.observed,
            kupiec_p=tested.kupiec_p,
            christoffersen_p=tested.independence_p,
            raw_coverage=raw.observed,
        )
    return out


@dataclass(frozen=True)
class DirectionCheck:
    hours: int
    brier: float
    base_rate_brier: float
    skill: float  # 1 - brier / base_rate_brier
    p_base_rate_better: float  # one-sided: the base-rate forecast has the lower Brier score

    def failures(self, adjusted: float, alpha: float) -> list[str]:
        if adjusted < alpha:
            return [
                f"the served direction probabilities are significantly worse than the base-rate forecast on "
                f"{self.hours} hours: Brier {self.brier:.4f} vs {self.base_rate_brier:.4f} "
                f"(p = {self.p_base_rate_better:.3g}, Holm-adjusted {adjusted:.3g} < {alpha})"
            ]
        return []


def direction_check(probs: np.ndarray, outcome: np.ndarray) -> DirectionCheck:
    """Brier score of `probs` (n, k) for class ids `outcome` against the same hours' base rate."""
    p = np.atleast_2d(np.asarray(probs, dtype=float))
    o = np.asarray(outcome, dtype=int)
    skill = brier_skill(p, o)
    onehot = np.eye(p.shape[1])[o]
    per_hour = np.sum((p - onehot) ** 2, axis=1)
    per_hour_base = np.sum((np.asarray(skill.base_rate)[None, :] - onehot) ** 2, axis=1)
    return DirectionCheck(
        hours=len(o),
        brier=skill.brier,
        base_rate_brier=skill.base_rate_brier,
        skill=skill.skill,
        p_base_rate_better=dm_test(per_hour_base - per_hour).p_better,
    )


@dataclass(frozen=True)
class CalibrationFamily:
    """The gate's calibration tests as one Holm family: raw and adjusted p-values by test name, the failures."""

    raw: dict[str, float]
    adjusted: dict[str, float]
    failures: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures


def calibration_family(
    checks: dict[float, IntervalCheck] | None, direction: DirectionCheck | None, alpha: float
) -> CalibrationFamily:
    """Holm-adjust every calibration test the candidate faces (those it has: intervals, probabilities) as one
    family at `alpha` and name each failure with its raw and adjusted p."""
    raw: dict[str, float] = {}
    for level, c in (checks or {}).items():
        pct = round(100 * level)
        raw[f"kupiec_{pct}"], raw[f"christoffersen_{pct}"] = c.kupiec_p, c.christoffersen_p
    if direction is not None:
        raw["brier"] = direction.p_base_rate_better
    adjusted = dict(zip(raw, holm(list(raw.values())).tolist())) if raw else {}
    failures: list[str] = []
    for level, c in (checks or {}).items():
        pct = round(100 * level)
        failures += c.failures(adjusted[f"kupiec_{pct}"], adjusted[f"christoffersen_{pct}"], alpha)
    if direction is not None:
        failures += direction.failures(adjusted["brier"], alpha)
    return CalibrationFamily(raw, adjusted, failures)
