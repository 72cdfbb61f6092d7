"""From forecasts on common test hours to typed evidence: metrics, families of tests.

Every forecaster (the five model kinds and the trained controls) is scored on the
same test hours. The claims a report may make are one-sided Diebold-Mariano tests,
grouped in FAMILIES by the question they answer, each family Holm-adjusted on its own:

* "return skill": each forecaster against the zero-return forecast (MSE, horizon 1);
* "does attention help": each attention model against its no-attention twin (the
  same LSTM reading its last state, same recipe, same hours);
* "volatility": the volatility forecasts against every volatility baseline by QLIKE
  (the volatility model's 24-hour variance, horizon 24: consecutive targets overlap
  by 23 hours, and its next-hour variance, horizon 1; the multi-task model's 24-hour
  head). Every pooled comparison is tested on the forecast log's monthly periods
  (`dm_test(..., periods=fs.fold)`: Ibragimov-Mueller on the per-period means where
  there are enough periods, else EWC): loss differentials of volatility forecasts stay
  correlated for hundreds of hours, and monthly refits shift their level.

The MSE of the variance is descriptive (raw p, no claim): a few spikes decide it,
and in the family it only diluted the QLIKE tests. The volatility section's headline
is every volatility forecaster against the best by QLIKE at each horizon
(`BestComparison`: the one-sided test on the periods, Holm), with Hansen's model
confidence set beside it, descriptive (its size is not held under long memory).

A comparison "survives" when its Holm-adjusted p < ALPHA within its family and the
model's loss is the lower one. Figures outside the families (skill against the
training mean, direction tests, MSE of the variance, Mincer-Zarnowitz) are
descriptive and labelled so.
"""

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from scipy import stats

from workflows.evaluation.intervals import SCALE, WARM_UP, log_intervals, sd_of
from workflows.ml.profiles import twins, variance_forecasters, volatility_models
from workflows.ml.windows import DIRECTION_NAMES, WindowData
from workflows.stats.calibration import (
    CoverageTest,
    ReliabilityBin,
    SdBinCoverage,
    brier_losses,
    coverage_by_sd,
    coverage_test,
    expanding_base_rate,
    holds_at_low_and_high_sd,
    interval_score,
    reliability_table,
)
from workflows.stats.losses import (
    MincerZarnowitz,
    mincer_zarnowitz,
    minimum_detectable_skill,
    pesaran_timmermann,
    qlike,
    qlike_losses,
)
from workflows.stats.significance import (
    BestComparison,
    ConfidenceSet,
    DMResult,
    direction_binomial,
    dm_test,
    holm,
    mean_interval,
    model_confidence_set,
    skill,
    worse_than_best,
)

ALPHA = 0.05
Z80 = stats.norm.ppf(0.90)
Z95 = stats.norm.ppf(0.975)
VOL_HORIZON = 24

# From the registry of model kinds (ml/profiles.py): attention model -> its no-attention twin (same LSTM,
# last state, same recipe); the dedicated volatility model (no return forecast) and every model whose
# 24-hour variance forecast is judged.
TWINS = twins()
VOLATILITY_MODEL = (volatility_models() or ("",))[0]
VOL_FORECASTERS = variance_forecasters()
# The volatility model's no-attention twin: a variance forecaster too (no return forecast); it answers
# "does attention help" by QLIKE at both horizons, never a volatility-family baseline.
VOLATILITY_TWIN = TWINS.get(VOLATILITY_MODEL, "")
# The volatility model's forecasts recalibrated in logs on each fold's validation slice: scored and in the
# model confidence set beside the raw model, never a baseline the models are tested against.
RECALIBRATED = "volatility_recalibrated"

# The families of tests, by the question each answers (each Holm-corrected on its own), and the
# descriptive comparisons (raw p, never "survives").
RETURN_SKILL, ATTENTION_HELPS, VOLATILITY, DESCRIPTIVE = "return skill", "does attention help", "volatility", ""
FAMILIES = (RETURN_SKILL, ATTENTION_HELPS, VOLATILITY)
MCS_SIZE = 0.10  # the set of best forecasters at 90%
MCS_REPS = 1000


OWN_SD = SCALE  # the conformal scale of every interval, reported and served (evaluation/intervals.py)
VOLATILITY_SCALE = "volatility model's next-hour sd"  # the scale of reports written before the one code path


@dataclass(frozen=True)
class IntervalCalibration:
    """One interval level on the evaluated hours after the warm-up: the model's own Gaussian interval
    (before) against the adaptive conformal one (after, `evaluation.intervals.conformal_intervals`: the
    intervals `latest_forecast` serves), both scaled by the model's own predictive sd."""

    calibration_hours: int
    before: CoverageTest
    after: CoverageTest
    interval_score_before: float
    interval_score_after: float
    scale: str = OWN_SD
    by_sd_before: list[SdBinCoverage] = field(default_factory=list)  # deciles of the model's own predicted sd
    by_sd_after: list[SdBinCoverage] = field(default_factory=list)  # deciles of the conformal scale's sd

    @property
    def calibrated(self) -> bool:
        """After calibration: coverage within COVERAGE_TOLERANCE of nominal, misses independent
        (Christoffersen p >= ALPHA), and coverage that holds where the predicted sd is lowest and highest
        (`holds_at_low_and_high_sd` over the deciles of the conformal scale)."""
        return (
            within_tolerance(self.after)
            and self.after.independence_p >= ALPHA
            and holds_at_low_and_high_sd(self.by_sd_after, ALPHA)
        )


COVERAGE_TOLERANCE = 0.02  # the aim: within 2 percentage points of nominal


def within_tolerance(c: CoverageTest) -> bool:
    return bool(abs(c.observed - c.nominal) <= COVERAGE_TOLERANCE + 1e-12)


MIN_TESTED = 200  # fewer hours after the warm-up than this: no interval evaluation


def interval_calibration(
    predicted: np.ndarray, actual: np.ndarray, predicted_var: np.ndarray
) -> dict[int, IntervalCalibration]:
    """80% and 95% coverage before and after conformal calibration, keyed by percent level.

    Before: the Gaussian interval of `predicted_var`. After: `conformal_intervals` of the same rows (the
    model's own sd, the first `WARM_UP` hours only calibrate): the intervals served for these hours. Hours
    must be in time order. Empty when fewer than `MIN_TESTED` hours follow the warm-up.
    """
    f, r = np.asarray(predicted, float), np.asarray(actual, float)
    if len(r) < WARM_UP + MIN_TESTED:
        return {}
    paths = log_intervals(r, f, predicted_var)
    assert paths is not None  # at least WARM_UP hours
    sd = sd_of(predicted_var)
    out: dict[int, IntervalCalibration] = {}
    for pct, z in ((80, Z80), (95, Z95)):
        level = pct / 100
        path = paths[level]
        lo_c, hi_c = path.lower, path.upper
        lo_g, hi_g = f - z * sd, f + z * sd
        t = path.tested()
        out[pct] = IntervalCalibration(
            calibration_hours=path.start,
            before=coverage_test(r[t], lo_g[t], hi_g[t], level),
            after=coverage_test(r[t], lo_c[t], hi_c[t], level),
            interval_score_before=interval_score(r[t], lo_g[t], hi_g[t], 1 - level),
            interval_score_after=interval_score(r[t], lo_c[t], hi_c[t], 1 - level),
            scale=OWN_SD,
            by_sd_before=coverage_by_sd(r[t], lo_g[t], hi_g[t], sd[t], level),
            by_sd_after=coverage_by_sd(r[t], lo_c[t], hi_c[t], sd[t], level),
        )
    return out


@dataclass(frozen=True)
class ReturnMetrics:
    """One forecaster's next-hour return forecasts on the evaluated hours (percent of log return)."""

    n: int
    rmse_pct: float
    mae_pct: float
    rmse_zero_pct: float
    rmse_mean_pct: float
    skill_vs_zero: float
    skill_vs_zero_ci: tuple[float, float]  # 95%, from the HAC variance of the loss differential
    skill_vs_mean: float
    dm_vs_zero: DMResult
    dm_vs_mean: DMResult
    direction_accuracy: float
    direction_n: int
    direction_binomial_p: float
    pesaran_timmermann_stat: float
    pesaran_timmermann_p: float
    min_detectable_skill: float
    coverage_80: float | None = None
    coverage_95: float | None = None
    calibration: dict[int, IntervalCalibration] = field(default_factory=dict)


def return_metrics(
    predicted: np.ndarray,
    actual: np.ndarray,
    train_mean: np.ndarray | float,
    predicted_var: np.ndarray | None = None,
) -> ReturnMetrics:
    """Metrics for next-hour log-return forecasts (raw log-return units). `train_mean` may vary by
    hour (each forecast period has its own training mean). The calibrated intervals are those
    `interval_calibration` (and `latest_forecast`) compute from these rows."""
    f, r = np.asarray(predicted, float), np.asarray(actual, float)
    mean_fc = np.broadcast_to(np.asarray(train_mean, float), r.shape)
    e = f - r
    mse, mse_zero = float(np.mean(e**2)), float(np.mean(r**2))
    mse_mean = float(np.mean((mean_fc - r) ** 2))
    lo, hi = mean_interval(e**2 - r**2)
    moved = r != 0
    hit_rate, p_binom = direction_binomial(np.sign(f[moved]) == np.sign(r[moved]))
    pt_stat, pt_p = pesaran_timmermann(f[moved], r[moved])
    cov80 = cov95 = None
    calibration: dict[int, IntervalCalibration] = {}
    if predicted_var is not None:
        calibration = interval_calibration(f, r, predicted_var)
        sd = np.sqrt(np.maximum(np.asarray(predicted_var, float), 1e-18))
        cov80, cov95 = float(np.mean(np.abs(e) <= Z80 * sd)), float(np.mean(np.abs(e) <= Z95 * sd))
    return ReturnMetrics(
        n=len(r),
        rmse_pct=100 * math.sqrt(mse),
        mae_pct=100 * float(np.mean(np.abs(e))),
        rmse_zero_pct=100 * math.sqrt(mse_zero),
        rmse_mean_pct=100 * math.sqrt(mse_mean),
        skill_vs_zero=skill(mse, mse_zero),
        skill_vs_zero_ci=(-hi / mse_zero, -lo / mse_zero),
        skill_vs_mean=skill(mse, mse_mean),
        dm_vs_zero=dm_test(e**2 - r**2),
        dm_vs_mean=dm_test(e**2 - (mean_fc - r) ** 2),
        direction_accuracy=hit_rate,
        direction_n=int(moved.sum()),
        direction_binomial_p=p_binom,
        pesaran_timmermann_stat=pt_stat,
        pesaran_timmermann_p=pt_p,
        min_detectable_skill=minimum_detectable_skill(len(r)),
        coverage_80=cov80,
        coverage_95=cov95,
        calibration=calibration,
    )


TRAINING_RATE = "training hours of each fold"
EXPANDING_RATE = "earlier evaluated hours (expanding; no training rate stored)"
RELIABILITY_BINS = 10


@dataclass(frozen=True)
class ProbabilityCalibration:
    """DOWN / STABLE / UP probabilities on the evaluated hours against the base-rate forecast.

    The base rate is each fold's training-hours class frequencies (`base_rate_source`); where none
    is stored, the expanding frequency of the evaluated hours before each hour, never an hour's own.
    `dm`: one-sided Diebold-Mariano test of the per-hour Brier score minus the base rate's
    (long-memory-robust variance: whether an hour moves past the threshold follows volatility,
    which remembers); `p_better` small = the model's probabilities are better.
    """

    n: int
    brier: float
    base_rate_brier: float
    skill: float  # 1 - brier / base_rate_brier
    dm: DMResult
    base_rate_source: str
    observed_rate: tuple[float, ...]  # class frequencies of the evaluated hours (descriptive)
    mean_base_rate: tuple[float, ...]  # the base-rate forecast averaged over the hours
    reliability: dict[str, list[ReliabilityBin]] = field(default_factory=dict)  # class name -> bins

    @property
    def beats_base_rate(self) -> bool:
        return bool(self.skill > 0 and self.dm.p_better < ALPHA)


def probability_calibration(
    probs: np.ndarray, outcome: np.ndarray, base_rates: np.ndarray | None = None, bins: int = RELIABILITY_BINS
) -> ProbabilityCalibration:
    """The Brier score of `probs` (n, k) against the base-rate forecast `base_rates` (n, k; None: the
    expanding past rate), the test of the difference and a reliability table per class."""
    p = np.asarray(probs, dtype=float)
    o = np.asarray(outcome, dtype=int)
    k = p.shape[1]
    source = TRAINING_RATE if base_rates is not None else EXPANDING_RATE
    base = expanding_base_rate(o, k) if base_rates is None else np.asarray(base_rates, dtype=float)
    own, ref = brier_losses(p, o), brier_losses(base, o)
    bs, bs_ref = float(own.mean()), float(ref.mean())
    names = DIRECTION_NAMES if k == len(DIRECTION_NAMES) else tuple(str(c) for c in range(k))
    return ProbabilityCalibration(
        n=int(o.size),
        brier=bs,
        base_rate_brier=bs_ref,
        skill=skill(bs, bs_ref),
        dm=dm_test(own - ref, long_memory=True),
        base_rate_source=source,
        observed_rate=tuple(float(x) for x in np.bincount(o, minlength=k) / o.size),
        mean_base_rate=tuple(float(x) for x in base.mean(axis=0)),
        reliability={names[c]: reliability_table(p[:, c], o == c, bins) for c in range(k)},
    )


@dataclass(frozen=True)
class VolatilityMetrics:
    """A forecast of the mean variance of the next `horizon` hours against the realised one
    (horizon 1: the squared next return)."""

    horizon: int
    qlike: float
    mse: float  # of the variance, in (percent^2)^2
    mz: MincerZarnowitz | None = None


def volatility_metrics(forecast: np.ndarray, realised: np.ndarray, horizon: int) -> VolatilityMetrics:
    mse = float(np.mean(((forecast - realised) * 1e4) ** 2))
    return VolatilityMetrics(horizon, qlike(forecast, realised), mse, mincer_zarnowitz(forecast, realised, horizon))


@dataclass(frozen=True)
class Comparison:
    """One member of the family: is `model` better than `baseline` under `loss`?"""

    kind: str  # "vs zero" | "attention vs twin" | "volatility" (horizon 24 or 1)
    model: str
    baseline: str
    loss: str  # "MSE" or "QLIKE"
    horizon: int
    skill: float  # 1 - loss_model / loss_baseline
    dm: DMResult
    p_holm: float = float("nan")  # Holm-adjusted within its family; NaN when descriptive
    baseline_loss: float = 0.0  # the baseline's mean loss (the skill's denominator; 0: not recorded)
    p_worse_holm: float = 1.0  # the reverse one-sided test ("the model is worse"), Holm within its family

    @property
    def family(self) -> str:
        """The question this test answers (`FAMILIES`), or DESCRIPTIVE."""
        if self.kind == "vs zero":
            return RETURN_SKILL
        if self.kind == "attention vs twin":
            return ATTENTION_HELPS
        return VOLATILITY if self.loss == "QLIKE" else DESCRIPTIVE

    @property
    def survives(self) -> bool:
        return bool(self.family != DESCRIPTIVE and self.p_holm < ALPHA and self.skill > 0)

    @property
    def worse(self) -> bool:
        """The model is significantly worse: the reverse one-sided test, Holm-corrected within the family."""
        return bool(self.family != DESCRIPTIVE and self.p_worse_holm < ALPHA and self.skill < 0)

    @property
    def resolvable_skill(self) -> float:
        """The skill this test finds four times in five at one-sided 5% (`DMResult.resolvable` over the
        baseline's mean loss): what "not shown to differ" could have seen."""
        return self.dm.resolvable() / self.baseline_loss if self.baseline_loss > 0 else float("nan")

    @property
    def test(self) -> str:
        return f"one-sided Diebold-Mariano ({test_words(self.dm)}), {self.loss} loss, horizon {self.horizon} h"


def test_words(dm: DMResult) -> str:
    """The variance (or clustering) a Diebold-Mariano result rests on, in words."""
    if dm.periods:
        return f"t-test on the {dm.periods} monthly periods' mean differences, Ibragimov-Mueller, t({dm.periods - 1})"
    if dm.variance == "HLN":
        return "HLN variance"
    if dm.variance.startswith("MAC"):
        return f"memory and autocorrelation consistent variance, {dm.variance}, standard normal"
    return f"{dm.variance} variance, t({dm.df:.0f})"


def tests_words(dms: Iterable[DMResult]) -> str:
    """The variances several Diebold-Mariano results rest on, each kind named once: the MAC variance's memory
    estimates as one range instead of one phrase per comparison."""
    words, memory = [], []
    for dm in dms:
        if dm.memory is not None and not dm.periods:
            memory.append(dm.memory)
        else:
            words.append(test_words(dm))
    if memory:
        lo, hi = min(memory), max(memory)
        span = f"d = {lo:.2f}" if lo == hi else f"d from {lo:.2f} to {hi:.2f}"
        words.append(f"memory and autocorrelation consistent variance, MAC ({span}), standard normal")
    return "; ".join(dict.fromkeys(words))


@dataclass
class ForecastSet:
    """Forecasts of every forecaster on the same test hours, in raw log-return units.

    `returns[name]` is a next-hour return forecast; `variances[name]` a predictive
    variance of that return (where a model gives one); `vol_var[name]` a forecast
    of the mean variance over the next 24 hours (the volatility models and baselines),
    `next_var[name]` one of the next hour's variance (its squared return).
    `probabilities[name]` (n, 3) are DOWN / STABLE / UP probabilities of a model with a
    direction head; `direction` the class that happened (None where not known) and
    `base_rates` (n, 3) the class frequencies of each hour's fold's training hours.
    """

    end_ts: np.ndarray
    fold: np.ndarray
    actual: np.ndarray
    train_mean: np.ndarray
    realised_var: np.ndarray
    returns: dict[str, np.ndarray] = field(default_factory=dict)
    variances: dict[str, np.ndarray] = field(default_factory=dict)
    vol_var: dict[str, np.ndarray] = field(default_factory=dict)
    next_var: dict[str, np.ndarray] = field(default_factory=dict)
    probabilities: dict[str, np.ndarray] = field(default_factory=dict)
    direction: np.ndarray | None = None
    base_rates: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.actual)

    @property
    def realised_next(self) -> np.ndarray:
        """The next hour's realised variance: its squared return."""
        return self.actual**2

    @classmethod
    def concat(cls, parts: "list[ForecastSet]") -> "ForecastSet":
        def cat(get):
            return np.concatenate([get(p) for p in parts])

        out = cls(
            cat(lambda p: p.end_ts),
            cat(lambda p: p.fold),
            cat(lambda p: p.actual),
            cat(lambda p: p.train_mean),
            cat(lambda p: p.realised_var),
        )
        for attr in ("returns", "variances", "vol_var", "next_var", "probabilities"):
            names = set.intersection(*(set(getattr(p, attr)) for p in parts))
            getattr(out, attr).update({n: cat(lambda p, n=n, a=attr: getattr(p, a)[n]) for n in sorted(names)})
        for attr in ("direction", "base_rates"):  # known for the pool only when known in every part
            if all(getattr(p, attr) is not None for p in parts):
                setattr(out, attr, cat(lambda p, a=attr: getattr(p, a)))
        return out


@dataclass(frozen=True)
class FoldSpan:
    """One fold's hours (window ends, UTC, to the minute) and what fitting it took."""

    fold: int  # 1-based; `ForecastSet.fold` holds the same number per test hour
    test_start: str
    test_end: str
    train_windows: int
    train_start: str
    train_end: str
    seconds: float = 0.0  # wall time of the fold's training and forecasts
    epochs: dict[str, int] = field(default_factory=dict)  # model -> epochs run in this fold

    @classmethod
    def of(
        cls, data: WindowData, fold: int = 1, seconds: float = 0.0, epochs: dict[str, int] | None = None
    ) -> "FoldSpan":
        """The span of `data`: its test and training window ends."""

        def minute(ts: np.ndarray) -> str:
            return str(ts)[:16]

        return cls(
            fold=fold,
            test_start=minute(data.test.end_ts.min()),
            test_end=minute(data.test.end_ts.max()),
            train_windows=len(data.train),
            train_start=minute(data.train.end_ts.min()),
            train_end=minute(data.train.end_ts.max()),
            seconds=float(seconds),
            epochs=dict(epochs or {}),
        )


@dataclass(frozen=True)
class FoldResult:
    fold: int
    test_start: str
    test_end: str
    test_hours: int
    train_windows: int
    train_start: str
    train_end: str
    seconds: float
    skill_vs_zero: dict[str, float]
    skill_ci: dict[str, tuple[float, float]]
    epochs: dict[str, int] = field(default_factory=dict)


@dataclass
class Evaluation:
    """Everything the report says about forecasts, with the evidence it rests on."""

    note: str  # what the evidence is (the forecast log's monthly periods), in words
    hours: int
    test_start: str
    test_end: str
    returns: dict[str, ReturnMetrics]
    volatility: dict[str, VolatilityMetrics]  # the mean variance of the next 24 hours
    family: list[Comparison]
    folds: list[FoldResult]
    config: dict
    errors: dict[str, str] = field(default_factory=dict)  # baselines that could not be fitted
    volatility_next: dict[str, VolatilityMetrics] = field(default_factory=dict)  # the next hour's variance
    # horizon -> Hansen's model confidence set over every volatility forecaster (QLIKE; descriptive)
    confidence_sets: dict[int, ConfidenceSet] = field(default_factory=dict)
    # horizon -> every volatility forecaster against the best by QLIKE (the volatility headline)
    best_tests: dict[int, BestComparison] = field(default_factory=dict)
    # model -> its DOWN / STABLE / UP probabilities against the base rate (models with a direction head)
    probabilities: dict[str, ProbabilityCalibration] = field(default_factory=dict)

    @property
    def min_detectable_skill(self) -> float:
        return minimum_detectable_skill(self.hours)

    def members(self, family: str) -> list[Comparison]:
        """The comparisons of one family (`FAMILIES`), or the descriptive ones (DESCRIPTIVE)."""
        return [c for c in self.family if c.family == family]

    def family_words(self, family: str) -> str:
        """How a verdict of `family` was corrected, in words."""
        return f"Holm-corrected within the {family} family of {len(self.members(family))} tests"

    def survivors(self, kind: str | None = None) -> list[Comparison]:
        return [c for c in self.family if c.survives and (kind is None or c.kind == kind)]

    def comparison(
        self, kind: str, model: str, baseline: str | None = None, loss: str | None = None, horizon: int | None = None
    ) -> Comparison | None:
        for c in self.family:
            if (
                c.kind == kind
                and c.model == model
                and (baseline is None or c.baseline == baseline)
                and (loss is None or c.loss == loss)
                and (horizon is None or c.horizon == horizon)
            ):
                return c
        return None

    def volatility_comparisons(self, model: str, horizon: int, loss: str = "QLIKE") -> list[Comparison]:
        return [
            c
            for c in self.family
            if c.kind == "volatility" and c.model == model and c.horizon == horizon and c.loss == loss
        ]

    def to_dict(self) -> dict:
        return _jsonable(asdict(self))

    def rows(self) -> list[tuple[str, str, float]]:
        """(forecaster, metric, value) for a long table: every number of the returns, volatility
        and family results."""
        out: list[tuple[str, str, float]] = []
        for name, m in self.returns.items():
            out += [(name, f"return.{k}", v) for k, v in _numbers(asdict(m)).items()]
        for label, table in (("volatility", self.volatility), ("volatility_next", self.volatility_next)):
            for name, v in table.items():
                out += [(name, f"{label}.{k}", x) for k, x in _numbers(asdict(v)).items() if k != "horizon"]
        for name, pc in self.probabilities.items():
            out += [(name, f"probabilities.{k}", v) for k, v in _numbers(asdict(pc)).items()]
        for h, bt in self.best_tests.items():
            out += [(name, f"best.h{h}.p_holm_worse", p) for name, p in bt.p_holm.items()]
            out += [(name, f"best.h{h}.worse", float(name in bt.worse)) for name in bt.mean_loss]
        for h, cs in self.confidence_sets.items():
            out += [(name, f"mcs.h{h}.p", p) for name, p in cs.pvalues.items()]
            out += [(name, f"mcs.h{h}.included", float(name in cs.included)) for name in cs.pvalues]
        for c in self.family:
            prefix = f"family.{c.kind.replace(' ', '_')}.{c.baseline}"
            if c.kind == "volatility":
                prefix += f".{c.loss.lower()}_h{c.horizon}"
            out += [
                (c.model, f"{prefix}.skill", c.skill),
                (c.model, f"{prefix}.p", c.dm.p_better),
                (c.model, f"{prefix}.p_holm", c.p_holm),
                (c.model, f"{prefix}.survives", float(c.survives)),
            ]
        for f in self.folds:
            out += [(name, f"fold_{f.fold}.skill_vs_zero", v) for name, v in f.skill_vs_zero.items()]
        return out


def _numbers(d: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= _numbers(v, key + ".")
        elif isinstance(v, (list, tuple)):
            out |= {f"{key}.{i}": float(x) for i, x in enumerate(v) if isinstance(x, (int, float))}
        elif isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool):
            out[key] = float(v)
    return out


def _jsonable(value) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # valid JSON: NaN and infinities are not
    return value


def _ciskill(loss_model: np.ndarray, loss_base: np.ndarray, horizon: int = 1) -> tuple[float, float]:
    lo, hi = mean_interval(loss_model - loss_base, horizon)
    base = float(np.mean(loss_base))
    return (-hi / base, -lo / base) if base > 0 else (float("nan"), float("nan"))


def fold_rows(fs: ForecastSet, fold_info: list[FoldSpan]) -> list[FoldResult]:
    """Skill against the zero forecast per fold and forecaster, with a 95% interval."""
    rows = []
    for info in fold_info:
        mask = fs.fold == info.fold
        r = fs.actual[mask]
        skills, cis = {}, {}
        for name, f in fs.returns.items():
            loss = (f[mask] - r) ** 2
            skills[name] = skill(float(loss.mean()), float(np.mean(r**2)))
            cis[name] = _ciskill(loss, r**2)
        rows.append(
            FoldResult(
                fold=info.fold,
                test_start=info.test_start,
                test_end=info.test_end,
                test_hours=int(mask.sum()),
                train_windows=info.train_windows,
                train_start=info.train_start,
                train_end=info.train_end,
                seconds=info.seconds,
                skill_vs_zero=skills,
                skill_ci=cis,
                epochs=info.epochs,
            )
        )
    return rows


def build_family(fs: ForecastSet) -> list[Comparison]:
    """Every comparison, each family (`FAMILIES`) Holm-adjusted on its own (the one-sided test and its reverse);
    descriptive ones keep p_holm NaN. Each pooled comparison is tested on the forecast log's periods (`dm_test`
    with `periods`: Ibragimov-Mueller on the per-period means where there are enough of them)."""
    r = fs.actual
    family: list[Comparison] = []
    for name, f in fs.returns.items():
        loss = (f - r) ** 2
        base = float(np.mean(r**2))
        dm = dm_test(loss - r**2, periods=fs.fold)
        family.append(
            Comparison("vs zero", name, "zero", "MSE", 1, skill(float(loss.mean()), base), dm, baseline_loss=base)
        )
    for model, twin in TWINS.items():
        if model in fs.returns and twin in fs.returns:
            lm, lt = (fs.returns[model] - r) ** 2, (fs.returns[twin] - r) ** 2
            family.append(
                Comparison(
                    "attention vs twin",
                    model,
                    twin,
                    "MSE",
                    1,
                    skill(float(lm.mean()), float(lt.mean())),
                    dm_test(lm - lt, periods=fs.fold),
                    baseline_loss=float(lt.mean()),
                )
            )
    family += attention_vs_twin_variance(fs)
    family += volatility_family(fs)
    out = list(family)
    for name in FAMILIES:
        idx = [i for i, c in enumerate(family) if c.family == name]
        better, worse = holm([family[i].dm.p_better for i in idx]), holm([1 - family[i].dm.p_better for i in idx])
        for i, p, q in zip(idx, better, worse):
            out[i] = replace(family[i], p_holm=float(p), p_worse_holm=float(q))
    return out


def _variance_comparisons(
    model: str,
    forecasts: dict[str, np.ndarray],
    realised: np.ndarray,
    horizon: int,
    losses: tuple[str, ...],
    periods: np.ndarray,
) -> list[Comparison]:
    out = []
    for loss in losses:

        def per_hour(v: np.ndarray, loss: str = loss) -> np.ndarray:
            return qlike_losses(v, realised) if loss == "QLIKE" else ((v - realised) * 1e4) ** 2

        own = per_hour(forecasts[model])
        for base, var in forecasts.items():
            if base in VOL_FORECASTERS or base in (RECALIBRATED, VOLATILITY_TWIN):
                continue
            other = per_hour(var)
            out.append(
                Comparison(
                    "volatility",
                    model,
                    base,
                    loss,
                    horizon,
                    skill(float(own.mean()), float(other.mean())),
                    dm_test(own - other, horizon, long_memory=True, periods=periods),
                    baseline_loss=float(other.mean()),
                )
            )
    return out


def attention_vs_twin_variance(fs: ForecastSet) -> list[Comparison]:
    """The volatility model against its no-attention twin by QLIKE at 24 h and 1 h, with the
    long-memory-robust variance (in the "does attention help" family)."""
    out = []
    for horizon, forecasts, realised in (
        (VOL_HORIZON, fs.vol_var, fs.realised_var),
        (1, fs.next_var, fs.realised_next),
    ):
        if VOLATILITY_TWIN and VOLATILITY_MODEL in forecasts and VOLATILITY_TWIN in forecasts:
            lm, lt = (
                qlike_losses(forecasts[VOLATILITY_MODEL], realised),
                qlike_losses(forecasts[VOLATILITY_TWIN], realised),
            )
            out.append(
                Comparison(
                    "attention vs twin",
                    VOLATILITY_MODEL,
                    VOLATILITY_TWIN,
                    "QLIKE",
                    horizon,
                    skill(float(lm.mean()), float(lt.mean())),
                    dm_test(lm - lt, horizon, long_memory=True, periods=fs.fold),
                    baseline_loss=float(lt.mean()),
                )
            )
    return out


def volatility_family(fs: ForecastSet) -> list[Comparison]:
    """The volatility model against every baseline at both horizons (QLIKE and MSE of the variance), and
    the multi-task model's 24-hour head against them (QLIKE)."""
    out = []
    if VOLATILITY_MODEL in fs.vol_var:
        out += _variance_comparisons(
            VOLATILITY_MODEL, fs.vol_var, fs.realised_var, VOL_HORIZON, ("QLIKE", "MSE"), fs.fold
        )
    if VOLATILITY_MODEL in fs.next_var:
        out += _variance_comparisons(VOLATILITY_MODEL, fs.next_var, fs.realised_next, 1, ("QLIKE", "MSE"), fs.fold)
    for model in VOL_FORECASTERS:
        if model != VOLATILITY_MODEL and model in fs.vol_var:
            out += _variance_comparisons(model, fs.vol_var, fs.realised_var, VOL_HORIZON, ("QLIKE",), fs.fold)
    return out


def confidence_sets(
    fs: ForecastSet, reps: int = MCS_REPS
) -> tuple[dict[int, ConfidenceSet], dict[int, BestComparison], dict[str, str]]:
    """At each horizon, over every volatility forecaster (QLIKE): Hansen's model confidence set at 90%
    (resampling whole periods where there are enough; descriptive: its size under long memory is not held,
    docs/benchmarks.md) and the headline, each forecaster against the best (`worse_than_best`, on the
    periods); with the error of any that could not be computed (named)."""
    out: dict[int, ConfidenceSet] = {}
    best: dict[int, BestComparison] = {}
    errors: dict[str, str] = {}
    for horizon, forecasts, realised in (
        (VOL_HORIZON, fs.vol_var, fs.realised_var),
        (1, fs.next_var, fs.realised_next),
    ):
        if len(forecasts) < 2:
            continue
        try:
            losses = {name: qlike_losses(v, realised) for name, v in forecasts.items()}
            best[horizon] = worse_than_best(losses, fs.fold, horizon, ALPHA)
            out[horizon] = model_confidence_set(losses, MCS_SIZE, reps, periods=fs.fold)
        except Exception as exc:  # a degenerate loss matrix must not lose the rest of the evidence
            errors[f"model confidence set h={horizon}"] = str(exc).splitlines()[0][:200] if str(exc) else repr(exc)
    return out, best, errors


def direction_probabilities(fs: ForecastSet) -> tuple[dict[str, ProbabilityCalibration], dict[str, str]]:
    """`probability_calibration` of every model with direction probabilities, with the error of any that
    could not be scored (named). Empty when the observed classes are not known."""
    out: dict[str, ProbabilityCalibration] = {}
    errors: dict[str, str] = {}
    if fs.direction is None:
        if fs.probabilities:
            errors["direction probabilities"] = "the observed classes are not stored for every period: not scored"
        return out, errors
    for name, p in fs.probabilities.items():
        try:
            out[name] = probability_calibration(p, fs.direction, fs.base_rates)
        except ValueError as exc:
            errors[f"direction probabilities of {name}"] = str(exc)
    return out, errors


def evaluate_forecasts(
    fs: ForecastSet, note: str, fold_info: list[FoldSpan], config: dict, errors: dict[str, str] | None = None
) -> Evaluation:
    returns = {
        name: return_metrics(f, fs.actual, fs.train_mean, fs.variances.get(name)) for name, f in fs.returns.items()
    }
    probabilities, prob_errors = direction_probabilities(fs)
    volatility = {name: volatility_metrics(v, fs.realised_var, VOL_HORIZON) for name, v in fs.vol_var.items()}
    volatility_next = {name: volatility_metrics(v, fs.realised_next, 1) for name, v in fs.next_var.items()}
    sets, best, set_errors = confidence_sets(fs)
    return Evaluation(
        note=note,
        hours=len(fs),
        test_start=str(fs.end_ts.min())[:16],
        test_end=str(fs.end_ts.max())[:16],
        returns=returns,
        volatility=volatility,
        family=build_family(fs),
        folds=fold_rows(fs, fold_info),
        config=config,
        errors=dict(errors or {}) | set_errors | prob_errors,
        volatility_next=volatility_next,
        confidence_sets=sets,
        best_tests=best,
        probabilities=probabilities,
    )
