"""The promotion gate and the served forecast.

A production pointer (`production.json` beside a symbol's checkpoints) names the
checkpoint that serves forecasts. A candidate replaces it only on evidence that luck
cannot win in time: one anytime-valid sequential test per candidate.

Evidence. Every hour on which the candidate forecast out of sample: each forecast hour
after the last hour its training and validation targets reached (`training_window`), its
own forecast period and every later hour the features hold, in time order (so the
evidence of a candidate that waits spans several periods, and grows with every hour that
lands). Against an incumbent, only hours out of sample for both.

The test (`stats.sequential`). The per-hour loss differential, squared error:

* nothing serves, or the serving checkpoint records no training window (its errors may be
  in-sample, so they are no evidence): d_t = e_zero^2 - e_candidate^2; null: the candidate
  is no more accurate than the zero-return forecast (skill <= 0);
* an incumbent whose window is recorded: d_t = (1 + margin) e_incumbent^2 - e_candidate^2;
  null: the candidate's MSE is at least (1 + margin) times the incumbent's, i.e. worse by the
  margin or more. `margin` is fixed in the configuration (0.1% of the incumbent's MSE): about
  the skill a next-hour return model can have, so a candidate worse by 1% is in the null,
  while an equivalent retrain of the incumbent can still replace it once the hours show it
  within 0.1%.

The normal-mixture e-process of d over the evidence hours is judged on its whole path:
the candidate is promoted at the first decision at which it has reached 1 / alpha_k at any
hour since `min_hours` (the burn-in of its plug-in sd). It is valid at any stopping time,
so the daily look needs no fresh-hours rule and no minimum: evidence is never consumed,
it only accumulates.

Lifetime budget. The k-th test the gate ever runs on a symbol (a candidate against one
comparator: a new incumbent makes a new test) runs at alpha_k = 6 alpha / (pi^2 k^2), so
over every candidate ever offered the chance that one no better than its comparator is
promoted is at most alpha. The ledger (`gate_ledger.json` beside the pointer) assigns k in
the order tests first run; a candidate seen again keeps its k.

No self-comparison. A candidate with the serving checkpoint's sha256 is not a decision:
the gate says so and consumes no k.

Calibration. The candidate's served 80% and 95% intervals and direction probabilities must
also pass their calibration checks on the same hours (`served_calibration`: adaptive
conformal, Kupiec and Christoffersen with Monte Carlo p-values, the Brier test against the
base rate, one Holm family at alpha). A failure refuses this decision, naming the test; a
later decision may pass. Calibration can only refuse, so it never adds to the budget.

Served intervals. `forecast_next_hour` serves forecast +- q x sd with the model's
predictive sd and the adaptive conformal state q of `evaluation.intervals` over the served
kind's rows of the whole forecast log (`served_quantiles`): the procedure the gate tested
and the report evaluates, on the report's hours, and says so in the forecast.
"""

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import torch
from filelock import FileLock
from scipy import stats

from workflows.data.sources.candles import ts_bounds
from workflows.evaluation.intervals import WARM_UP, ConformalIntervals, IntervalHistory, log_intervals
from workflows.io import StoredFileError, read_json_object, write_json_atomic
from workflows.ml.checkpoints import Checkpoint, load_checkpoint
from workflows.ml.training import predict
from workflows.ml.windows import (
    DIRECTION_NAMES,
    LAST_TARGET_KEY,
    WindowSpec,
    _prepare,
    direction_classes,
    iso_hour,
    parse_iso_hour,
)
from workflows.serving.served_calibration import calibration_family, direction_check, interval_checks
from workflows.serving.served_record import ServedForecast
from workflows.stats.sequential import alpha_for, sequential_test

POINTER = "production.json"
LEDGER = "gate_ledger.json"  # the tests the gate has run on this symbol, in order: their index k fixes their level
LOCK_FILE = ".production.lock"  # serialises the gate per symbol (`promotion_lock`)
POWER = 0.8  # power at which the resolvable MSE difference is computed (descriptive)
ZERO = "zero-return forecast"


@dataclass(frozen=True)
class GateConfig:
    margin: float = 0.001  # non-inferiority margin against an incumbent, a fraction of its MSE (module doc)
    alpha: float = 0.05  # lifetime error budget over every test on a symbol; also the calibration family's level
    min_hours: int = 100  # burn-in: crossings before this many evidence hours do not count
    t_opt: int = 2000  # evidence hours at which the e-process's boundary is tightest (about three months)

    def __post_init__(self):
        if not 0 <= self.margin < 0.05:
            raise ValueError(f"margin must be in [0, 0.05) of the incumbent's MSE, got {self.margin}")
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {self.alpha}")
        if self.min_hours < 10:
            raise ValueError(f"min_hours must be at least 10 (the plug-in sd needs them), got {self.min_hours}")
        if self.t_opt < self.min_hours:
            raise ValueError(f"t_opt must be at least min_hours ({self.min_hours}), got {self.t_opt}")


@dataclass(frozen=True)
class GateDecision:
    promoted: bool
    reason: str
    hours: int  # evidence hours: out of sample for the candidate (and the incumbent), with an outcome
    mse_candidate: float | None = None
    mse_current: float | None = None  # the incumbent's; None when nothing serves
    mse_zero: float | None = None
    skill_vs_zero: float | None = None  # 1 - MSE_candidate / MSE_zero
    skill_vs_comparator: float | None = None  # 1 - MSE_candidate / MSE_comparator
    basis: str = ""  # "more accurate than zero" | "non-inferior to the incumbent" when promoted
    comparator: str = ""  # "incumbent" | ZERO
    self_comparison: bool = False  # the candidate is the serving checkpoint: not a decision
    alpha: float = GateConfig.alpha  # the lifetime budget
    test_index: int | None = None  # k: this test's place in the symbol's ledger
    level: float | None = None  # alpha_k = 6 alpha / (pi^2 k^2)
    margin: float = GateConfig.margin
    min_hours: int = GateConfig.min_hours
    t_opt: int = GateConfig.t_opt
    e_value: float | None = None  # the e-process at the last evidence hour
    e_max: float | None = None  # its largest value since the burn-in
    threshold: float | None = None  # 1 / alpha_k
    crossed_hour: str | None = None  # the first forecast hour at which it reached the threshold
    resolvable_excess: float | None = None  # MSE difference a fixed-n test on these hours resolves (descriptive)
    hours_offered: int = 0
    hours_in_sample_candidate: int = 0  # offered hours at or before the candidate's last target hour
    hours_in_sample_current: int = 0  # ... the incumbent's
    hours_without_window: int = 0  # offered hours where a model has no complete input window
    first_hour: str | None = None  # first and last forecast hour of the evidence (UTC)
    last_hour: str | None = None
    candidate_last_target: str | None = None
    current_last_target: str | None = None
    current_window_known: bool | None = None  # None: nothing serves
    # the served intervals (served_calibration): first `calibration_hours` calibrate, `coverage_hours` test
    calibration_hours: int | None = None
    coverage_hours: int | None = None
    coverage_80: float | None = None  # of the conformal interval on the tested hours
    kupiec_p_80: float | None = None  # Monte Carlo p-values, before the family's Holm adjustment
    christoffersen_p_80: float | None = None
    raw_coverage_80: float | None = None  # the Gaussian interval on the same hours, before calibration
    conformal_q80: float | None = None  # the next quantile (in predictive sds) after the evidence hours (descriptive:
    # what is served comes from the forecast log, `served_quantiles`)
    conformal_level_80: float | None = None  # the adapted level it is taken at
    coverage_95: float | None = None
    kupiec_p_95: float | None = None
    christoffersen_p_95: float | None = None
    raw_coverage_95: float | None = None
    conformal_q95: float | None = None
    conformal_level_95: float | None = None
    # the served direction probabilities
    brier: float | None = None
    brier_base_rate: float | None = None  # the same hours' class frequencies as a constant forecast
    brier_skill: float | None = None
    p_base_rate_better: float | None = None
    calibration_holm: dict[str, float] | None = None  # each calibration test's Holm-adjusted p (one family)

    @property
    def decided(self) -> bool:
        """The sequential test ran on these hours (its index k is now taken)."""
        return self.e_value is not None

    def to_dict(self) -> dict:
        return asdict(self)


def last_target_hour(ckpt: Checkpoint) -> int | None:
    """Unix hour of the checkpoint's last training/validation target; None for a checkpoint that records none."""
    text = (ckpt.metrics or {}).get(LAST_TARGET_KEY)
    return parse_iso_hour(text) if text else None


def _spec(ckpt: Checkpoint) -> WindowSpec:
    d = dict(ckpt.window_spec)
    d["features"] = tuple(d["features"])
    return WindowSpec(**d)


def _rows(ckpt: Checkpoint, features: pl.DataFrame, end_ts: np.ndarray):
    """Feature rows of the windows ending at `end_ts`, and which of them are complete windows for `ckpt`."""
    spec = _spec(ckpt)
    frame, values, ret_all, ends, _ = _prepare(features, spec)
    ts = frame["ts"].to_numpy()
    rows = np.minimum(np.searchsorted(ts, end_ts), len(ts) - 1)
    ok = (ts[rows] == end_ts) & np.isin(rows, ends) & (rows + 1 < len(ts))
    return spec, values, ret_all, rows, ok


def has_window(ckpt: Checkpoint, features: pl.DataFrame, end_ts: np.ndarray) -> np.ndarray:
    """Mask over `end_ts`: the checkpoint has a complete input window and a next-hour target there."""
    return _rows(ckpt, features, np.asarray(end_ts))[-1]


def evidence_ends(features: pl.DataFrame) -> np.ndarray:
    """Every window end the features hold, in time order: the gate keeps those out of sample for its models."""
    return features.sort("ts")["ts"].to_numpy()


def inputs_at(ckpt: Checkpoint, features: pl.DataFrame, end_ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The checkpoint's own scaled inputs for windows ending at `end_ts`, and the next-hour returns.

    Each model sees the hours through its own scaler and feature list, so two models
    with different training data are compared on exactly the same hours. Hours where
    the checkpoint has no complete window are dropped (filter with `has_window` first
    to keep two models aligned)."""
    spec, values, ret_all, rows, ok = _rows(ckpt, features, np.asarray(end_ts))
    rows = rows[ok]
    scaled = ckpt.scaler.transform(values)
    offsets = np.arange(-(spec.window - 1), 1)
    return scaled[rows[:, None] + offsets[None, :]], ret_all[rows + 1]


def _served(out: dict[str, np.ndarray], scale: float) -> dict[str, np.ndarray]:
    """What a model serves from its raw outputs, in log-return units: the forecast `ret`, the predictive sd
    `sd` (its Gaussian head) and the DOWN / STABLE / UP `probs`, the last two only where it has those heads."""
    served = {"ret": np.asarray(out["ret"], dtype=np.float64) * scale}
    if "log_var" in out:
        served["sd"] = np.sqrt(np.exp(np.asarray(out["log_var"], dtype=np.float64))) * scale
    if "direction_logits" in out:
        served["probs"] = torch.softmax(torch.as_tensor(out["direction_logits"], dtype=torch.float64), -1).numpy()
    return served


def _forecast(ckpt: Checkpoint, features: pl.DataFrame, end_ts: np.ndarray) -> dict[str, np.ndarray]:
    """`_served` on the windows ending at `end_ts`, and the next-hour returns `y`."""
    x, y = inputs_at(ckpt, features, end_ts)
    return {**_served(predict(ckpt.model, x), ckpt.scaler.target_scale), "y": y}


def resolvable_excess(loss_model: np.ndarray, loss_ref: np.ndarray, alpha: float, power: float = POWER) -> float:
    """Smallest mean loss difference a one-sided fixed-n level-`alpha` test detects with `power` on these hours,
    relative to the reference's mean loss: (z_(1-alpha) + z_power) x se(loss_model - loss_ref) / mean(loss_ref).
    Descriptive: what the evidence so far could resolve."""
    d = np.asarray(loss_model, dtype=float) - np.asarray(loss_ref, dtype=float)
    se = float(d.std(ddof=1) / math.sqrt(len(d)))
    z = float(stats.norm.ppf(1 - alpha) + stats.norm.ppf(power))
    return z * se / float(np.mean(loss_ref))


def _calibration(
    y: np.ndarray, forecast: np.ndarray, sd: np.ndarray | None, probs: np.ndarray | None, threshold: float, alpha: float
) -> tuple[dict, list[str]]:
    """The served intervals' and probabilities' figures (GateDecision fields) and the failures of their one
    Holm family at `alpha`."""
    fields: dict = {}
    checks = interval_checks(y, forecast, sd) if sd is not None else None
    for level, c in (checks or {}).items():
        pct = round(100 * level)
        fields |= {
            f"coverage_{pct}": c.coverage,
            f"kupiec_p_{pct}": c.kupiec_p,
            f"christoffersen_p_{pct}": c.christoffersen_p,
            f"raw_coverage_{pct}": c.raw_coverage,
            f"conformal_q{pct}": c.q_served,
            f"conformal_level_{pct}": c.level_served,
            "calibration_hours": c.calibration_hours,
            "coverage_hours": c.tested_hours,
        }
    direction = direction_check(probs, direction_classes(y, threshold)) if probs is not None else None
    if direction is not None:
        fields |= {
            "brier": direction.brier,
            "brier_base_rate": direction.base_rate_brier,
            "brier_skill": direction.skill,
            "p_base_rate_better": direction.p_base_rate_better,
        }
    family = calibration_family(checks, direction, alpha)
    if family.adjusted:
        fields["calibration_holm"] = family.adjusted
    return fields, family.failures


def decide(
    y: np.ndarray,
    f_candidate: np.ndarray,
    f_current: np.ndarray | None,
    config: GateConfig = GateConfig(),
    test_index: int = 1,
    sd_candidate: np.ndarray | None = None,
    probs_candidate: np.ndarray | None = None,
    direction_threshold: float = WindowSpec.direction_threshold,
    forecast_hours: np.ndarray | None = None,
    **context,
) -> GateDecision:
    """The rule (module docstring) on aligned next-hour returns and forecasts, every evidence hour in time order.

    `f_current` is the incumbent's forecast when it is a valid comparator (its window is known
    and these hours are out of sample for it), else None: the comparator is the zero-return
    forecast. `test_index` is k in the symbol's ledger. `sd_candidate` and `probs_candidate`
    are what the candidate would serve besides the point forecast, None when it serves none;
    they are checked for calibration. `forecast_hours` (Unix hours) name the crossing hour;
    `context` carries the hour bookkeeping into the decision."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    level = alpha_for(config.alpha, test_index)
    common = {
        "hours": n,
        "alpha": config.alpha,
        "margin": config.margin,
        "min_hours": config.min_hours,
        "t_opt": config.t_opt,
        "test_index": test_index,
        "level": level,
        "threshold": 1 / level,
        "comparator": "incumbent" if f_current is not None else ZERO,
        **context,
    }
    if n < config.min_hours:
        return GateDecision(
            False,
            f"only {n} evidence hours (out of sample, with an outcome); the sequential test starts judging at "
            f"{config.min_hours}: nothing is decided and nothing consumed, the evidence accumulates",
            **common,
        )
    loss_c, loss_z = (np.asarray(f_candidate, dtype=float) - y) ** 2, y**2
    mse_c, mse_z = float(loss_c.mean()), float(loss_z.mean())
    if mse_z <= 0:
        return GateDecision(
            False, "the evidence hours have no price movement: the zero-return forecast is exact", **common
        )
    loss_ref = loss_z if f_current is None else (np.asarray(f_current, dtype=float) - y) ** 2
    mse_ref = float(loss_ref.mean())
    margin = 0.0 if f_current is None else config.margin
    seq = sequential_test((1 + margin) * loss_ref - loss_c, level, config.t_opt, config.min_hours)
    fields = {
        **common,
        "mse_candidate": mse_c,
        "mse_zero": mse_z,
        "mse_current": context.get("mse_current") if f_current is None else mse_ref,  # a legacy one's: shown
        "skill_vs_zero": 1 - mse_c / mse_z,
        "skill_vs_comparator": 1 - mse_c / mse_ref if mse_ref > 0 else None,
        "e_value": seq.e_value,
        "e_max": seq.e_max,
        "resolvable_excess": resolvable_excess(loss_c, loss_ref, config.alpha),
    }
    if seq.crossed_at is not None and forecast_hours is not None:
        fields["crossed_hour"] = iso_hour(int(np.asarray(forecast_hours)[seq.crossed_at]))
    checked, failures = _calibration(
        y, np.asarray(f_candidate, dtype=float), sd_candidate, probs_candidate, direction_threshold, config.alpha
    )
    fields |= checked
    null = (
        "no more accurate than the zero-return forecast"
        if f_current is None
        else f"worse than the incumbent by {margin:.1%} of its MSE or more"
    )
    first, last = common.get("first_hour"), common.get("last_hour")
    span = f" {first} .. {last}" if first and last else ""
    test = (
        f"test {test_index} on this symbol at alpha_{test_index} = {level:.3g} of the lifetime {config.alpha}; "
        f"{n} evidence hours{span}, skill against the "
        f"{'incumbent' if f_current is not None else 'zero forecast'} {fields['skill_vs_comparator']:+.2%}"
    )
    claim_text = f"within {margin:.1%} of the incumbent's MSE or better"
    if not seq.rejected:
        return GateDecision(
            False,
            f"not shown {'more accurate than the zero-return forecast' if f_current is None else claim_text} "
            f"(null: {null}): the e-process has reached E = {seq.e_max:.3g} at most, short of "
            f"1/alpha_k = {1 / level:.3g} ({test}; a fixed-n test on these hours would resolve about "
            f"{fields['resolvable_excess']:.2%}); the test goes on as hours land",
            **fields,
        )
    basis = "more accurate than zero" if f_current is None else "non-inferior to the incumbent"
    claim = (
        f"{'more accurate than the zero-return forecast' if f_current is None else basis + f' within {margin:.1%}'}: "
        f"the e-process reached E = {seq.e_max:.3g} >= 1/alpha_k = {1 / level:.3g}"
        f"{' at ' + fields['crossed_hour'] if 'crossed_hour' in fields else ''} ({test})"
    )
    if failures:
        return GateDecision(False, "; ".join(failures) + f" (accuracy alone would pass: {claim})", **fields)
    return GateDecision(True, claim, basis=basis, **fields)


def gate(
    candidate: Checkpoint,
    current: Checkpoint | None,
    features: pl.DataFrame,
    end_ts: np.ndarray,
    config: GateConfig = GateConfig(),
    test_index: int = 1,
) -> GateDecision:
    """Decide whether `candidate` replaces `current` on the evidence among the windows ending at `end_ts`
    (module docstring): every one out of sample for both models, with a complete window and an outcome.

    `test_index`: k of this (candidate, comparator) test in the symbol's ledger (`promote` finds it)."""
    end_ts = np.sort(np.asarray(end_ts))
    base = {
        "alpha": config.alpha,
        "margin": config.margin,
        "min_hours": config.min_hours,
        "t_opt": config.t_opt,
        "hours_offered": len(end_ts),
    }
    if current is not None and current.sha256 == candidate.sha256:
        return self_comparison(candidate.path.name, **base)
    cand_last = last_target_hour(candidate)
    if cand_last is None:
        return GateDecision(
            False,
            f"the candidate {candidate.path.name} records no training window "
            f"({LAST_TARGET_KEY}): its test hours cannot be asserted out of sample; retrain it",
            0,
            **base,
        )
    cur_last = last_target_hour(current) if current is not None else None
    known = None if current is None else cur_last is not None
    forecast_hour = end_ts.astype("datetime64[h]").astype(np.int64) + 1  # the hour each window forecasts
    ok_window = has_window(candidate, features, end_ts)
    if current is not None:
        ok_window &= has_window(current, features, end_ts)
    after_c = forecast_hour > cand_last
    after_p = forecast_hour > cur_last if cur_last is not None else np.ones(len(end_ts), dtype=bool)
    use = ok_window & after_c & after_p
    info = {
        **base,
        "hours_in_sample_candidate": int((~after_c).sum()),
        "hours_in_sample_current": int((~after_p).sum()),
        "hours_without_window": int((~ok_window).sum()),
        "candidate_last_target": iso_hour(cand_last),
        "current_window_known": known,
        "current_last_target": iso_hour(cur_last) if cur_last is not None else None,
    }
    if use.any():
        info |= {
            "first_hour": iso_hour(int(forecast_hour[use].min())),
            "last_hour": iso_hour(int(forecast_hour[use].max())),
        }
    hours = end_ts[use]
    out = _forecast(candidate, features, hours) if len(hours) else {"y": np.zeros(0), "ret": np.zeros(0)}
    y = out["y"]
    f_p = None
    if current is not None and len(hours):
        cur = _forecast(current, features, hours)
        if not np.array_equal(y, cur["y"]):
            raise RuntimeError("candidate and incumbent targets differ on the same hours")
        f_p = cur["ret"]
        if not known:  # a legacy incumbent: its MSE is shown, but it is no evidence
            info["mse_current"] = float(np.mean((f_p - y) ** 2))
            f_p = None
    if current is not None and known and f_p is None:
        f_p = np.zeros(0)  # no hour yet: still a test against the incumbent
    return decide(
        y,
        out["ret"],
        f_p,
        config,
        test_index,
        sd_candidate=out.get("sd"),
        probs_candidate=out.get("probs"),
        direction_threshold=_spec(candidate).direction_threshold,
        forecast_hours=forecast_hour[use],
        **info,
    )


def self_comparison(name: str, **context) -> GateDecision:
    """The candidate is the serving checkpoint: no decision, no test index consumed."""
    return GateDecision(
        False,
        f"the candidate {name} is the serving checkpoint (same sha256): not a decision, nothing consumed",
        0,
        self_comparison=True,
        **context,
    )


def read_pointer(folder: Path) -> dict | None:
    """The production pointer in `folder`, its `path` resolved to an absolute path (None: nothing promoted).

    The file stores the checkpoint's path relative to the pointer's own folder (the
    checkpoints lie beside it), so a moved or re-mounted data folder keeps its pointer; an
    absolute path written by an older version is read as it is."""
    path = folder / POINTER
    if not path.exists():
        return None
    remedy = (
        f"restore it from a backup, or delete it to serve the zero-return forecast until the gate promotes a "
        f"model again (the newest decision, with the checkpoint it promoted, is in reports/{folder.name}/"
        "promotion_gate.md)"
    )
    pointer = read_json_object(path, "the production pointer", remedy, keys=("path", "sha256"))
    pointer["path"] = str((folder / pointer["path"]).resolve())
    return pointer


def write_pointer(folder: Path, ckpt_path: str, sha256: str, decision: GateDecision) -> dict:
    """Publish the pointer atomically; returns it as `read_pointer` does (absolute `path`)."""
    target = Path(ckpt_path).resolve()
    pointer = {
        "path": os.path.relpath(target, folder.resolve()),
        "sha256": sha256,
        "promoted_at": datetime.now(timezone.utc).isoformat(),
        "gate": decision.to_dict(),
    }
    write_json_atomic(folder / POINTER, pointer)
    return {**pointer, "path": str(target)}


def load_current(folder: Path) -> Checkpoint | None:
    """The checkpoint the pointer names (None only when no pointer exists: nothing was ever promoted).

    A pointer whose file is gone, or whose bytes changed, is an error: silently serving
    the zero-return forecast instead would hide that the promoted model was lost."""
    pointer = read_pointer(folder)
    if pointer is None:
        return None
    path = Path(pointer["path"])
    if not path.exists():
        raise FileNotFoundError(
            f"{folder / POINTER} names the serving checkpoint {path}, which does not exist: rebuild it with "
            f"`workflows run --symbol {folder.name}` (a checkpoint's bytes depend only on what was trained, so the "
            f"same data and code recreate the same file, sha256 {pointer['sha256'][:16]}...), or restore it from a "
            f"backup, or delete {POINTER} to serve the zero-return forecast until the gate promotes a model"
        )
    return load_checkpoint(path, pointer["sha256"])


def comparator_key(current: Checkpoint | None) -> str:
    """What a candidate is tested against: the incumbent's sha256 when its window is known, else the zero
    forecast (a legacy incumbent is no evidence)."""
    if current is None or last_target_hour(current) is None:
        return ZERO
    return current.sha256


def read_ledger(folder: Path) -> list[dict]:
    """The tests run on this symbol, in the order they first ran (k = position + 1)."""
    path = folder / LEDGER
    if not path.exists():
        return []
    remedy = (
        "it numbers the gate's tests for the lifetime error budget: restore it from a backup (deleting it restarts "
        "the count at k = 1 and spends the budget again)"
    )
    tests = read_json_object(path, "the gate's ledger", remedy, keys=("tests",))["tests"]
    if not isinstance(tests, list):
        raise StoredFileError(path, "the gate's ledger", "its tests are not a list", remedy)
    return tests


def ledger_index(folder: Path, candidate_sha256: str, comparator: str) -> int:
    """k of the (candidate, comparator) test: its place in the ledger, or the next one for a test not yet run."""
    tests = read_ledger(folder)
    for i, t in enumerate(tests):
        if t["candidate_sha256"] == candidate_sha256 and t["comparator"] == comparator:
            return i + 1
    return len(tests) + 1


def register_test(folder: Path, candidate_path: str, candidate_sha256: str, comparator: str, k: int) -> None:
    """Write the test into the ledger at place k (once: a test seen again keeps its place)."""
    tests = read_ledger(folder)
    if k <= len(tests):
        return
    tests.append(
        {
            "k": k,
            "candidate": Path(candidate_path).name,
            "candidate_sha256": candidate_sha256,
            "comparator": comparator,
            "first_run": datetime.now(timezone.utc).isoformat(),
        }
    )
    write_json_atomic(folder / LEDGER, {"tests": tests})


@contextmanager
def promotion_lock(folder: Path) -> Iterator[None]:
    """Hold the symbol's promotion lock (an exclusive `filelock` on `.production.lock` in `folder`).

    Read the incumbent, judge, write the pointer: all inside it, so two runs never promote
    against the same incumbent (the second waits and then judges against the first's winner)."""
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / LOCK_FILE, thread_local=False):
        yield


def promote(
    folder: Path,
    candidate_path: str,
    candidate_sha256: str,
    judge: Callable[[Checkpoint | None, int], GateDecision],
) -> tuple[GateDecision, dict | None]:
    """Judge the candidate against the incumbent and move the pointer if promoted, under the symbol's lock.

    `judge(incumbent, k)` returns the decision (`gate(...)` with the candidate bound; k from the ledger).
    The candidate that already serves is not judged and takes no k. A test that ran is written into the
    ledger at its k. Returns the decision and the pointer in force afterwards (None: nothing serves)."""
    with promotion_lock(folder):
        current = load_current(folder)
        if current is not None and current.sha256 == candidate_sha256:
            return self_comparison(Path(candidate_path).name), read_pointer(folder)
        comparator = comparator_key(current)
        try:
            k = ledger_index(folder, candidate_sha256, comparator)
        except StoredFileError as exc:  # what serves keeps serving, and the forecast refresh after the gate goes on
            return GateDecision(False, f"not decided: {exc}", 0), read_pointer(folder)
        decision = judge(current, k)
        if decision.decided:
            register_test(folder, candidate_path, candidate_sha256, comparator, k)
        if decision.promoted:
            return decision, write_pointer(folder, candidate_path, candidate_sha256, decision)
        return decision, read_pointer(folder)


def served_quantiles(
    history: IntervalHistory | None, forecast_hour: datetime
) -> tuple[dict[float, ConformalIntervals], str, str | None]:
    """The conformal state for the hour `forecast_hour`, per level (`ConformalIntervals.next_interval` gives the
    interval), how it was found, and its version (the forecast hours it rests on: `<first>..<last>/<count>`;
    None: none served).

    `conformal_intervals` over the served kind's rows of the whole forecast log before the hour
    (`forecast_log.interval_history`): the procedure the report evaluates, so the interval served for an
    hour is the report's interval for it. Empty, with the reason, when the log holds fewer than `WARM_UP`
    such hours."""
    naive = forecast_hour if forecast_hour.tzinfo is None else forecast_hour.astimezone(timezone.utc)
    hour = np.datetime64(naive.replace(tzinfo=None), "us")
    rows = history.before(hour) if history is not None else None
    n = 0 if rows is None else len(rows.y)
    if rows is None or n < WARM_UP:
        return (
            {},
            (
                f"none served: the forecast log holds {n} hours of the served kind before "
                f"{forecast_hour:%Y-%m-%dT%H:%M}; its intervals start after a warm-up of {WARM_UP}"
            ),
            None,
        )
    paths = log_intervals(rows.y, rows.forecast, rows.variance)
    assert paths is not None
    targets = rows.origin_ts[[0, -1]].astype("datetime64[h]").astype(np.int64) + 1
    first, final = (iso_hour(int(h)) for h in targets)
    p80, p95 = paths[0.80], paths[0.95]
    return (
        paths,
        (
            f"adaptive conformal scaled by the model's predictive sd (forecast +- q x sd) on the forecast log's "
            f"{n} hours of {rows.name}, {first} to {final} (the first {WARM_UP} only calibrate; the report's "
            f"intervals): q80 = {p80.q_next:.3f} (level {p80.level_next:.1%}), q95 = {p95.q_next:.3f} "
            f"(level {p95.level_next:.1%})"
        ),
        f"{first}..{final}/{n}",
    )


def _pct(interval: tuple[float, float]) -> tuple[float, float]:
    return 100 * interval[0], 100 * interval[1]


def forecast_next_hour(
    ckpt: Checkpoint | None, features: pl.DataFrame, history: IntervalHistory | None = None
) -> ServedForecast:
    """Next-hour forecast from the newest complete window; the zero forecast when no model serves.

    The 80% / 95% intervals are forecast +- q x sd, sd the model's predictive sd and q the conformal state of
    `served_quantiles` over `history` (the served kind's forecast-log rows); `interval_calibration` says how
    they were found (or why none is served); `sd_pct` is the sd."""
    last = ts_bounds(features)[1]
    hour = last + timedelta(hours=1)
    if ckpt is None:
        return ServedForecast(last, hour, "zero-return forecast (no model has passed the promotion gate)", 0.0)
    spec = _spec(ckpt)
    frame, values, _, _, ts_hours = _prepare(features, spec)
    t = frame.height - 1
    segment = frame["segment"].to_numpy()
    if (
        t < spec.window - 1
        or ts_hours[t] - ts_hours[t - spec.window + 1] != spec.window - 1
        or segment[t] != segment[t - spec.window + 1]
    ):
        raise ValueError(f"the newest {spec.window} feature hours are not consecutive: cannot forecast yet")
    window = ckpt.scaler.transform(values[t - spec.window + 1 : t + 1])[None]
    with torch.no_grad():
        served = _served(predict(ckpt.model, window), ckpt.scaler.target_scale)
    ret = float(served["ret"][0])
    forecast = ServedForecast(
        last,
        hour,
        ckpt.path.name,
        100 * ret,
        checkpoint_sha256=ckpt.sha256,
        direction_threshold_pct=100 * spec.direction_threshold,
    )
    if "sd" in served:
        sd = float(served["sd"][0])
        paths, note, version = served_quantiles(history, hour)
        forecast = replace(
            forecast,
            interval_80_pct=_pct(paths[0.80].next_interval(ret, sd)) if paths else None,
            interval_95_pct=_pct(paths[0.95].next_interval(ret, sd)) if paths else None,
            sd_pct=100 * sd,
            interval_calibration=note,
            conformal_state=version,
        )
    if "probs" in served:
        forecast = replace(forecast, direction_probabilities=dict(zip(DIRECTION_NAMES, served["probs"][0].tolist())))
    return forecast
