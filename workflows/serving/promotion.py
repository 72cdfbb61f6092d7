"""The promotion gate and the served forecast.

A production pointer (`production.json` beside a symbol's checkpoints) names the
checkpoint that serves forecasts. A candidate replaces it only on evidence, judged
on forecast hours that neither model saw while it was fitted and that no earlier
decision has judged.

Out of sample. Each checkpoint records the last hour its training and validation
targets reached (`training_window`: the last window end of either split plus the
target horizon, since a window ending at t has targets up to t + vol_horizon). A
test window ending at t forecasts hour t + 1, so it is used only when t + 1 is after
both models' last target hour.

Fresh hours (repeated looks). The gate runs after every retrain, and successive
candidates' test hours overlap almost entirely: judged again and again on the same
hours, some candidate passes by luck, and a chain of "non-inferior" swaps drifts. So
every decision that runs the tests records the last hour it judged (`last_decision.json`
beside the pointer, and the pointer's `gate` record when it promotes), and the next
decision uses only forecast hours after it; the first decision uses every out-of-sample
hour. Fewer than `min_hours` usable hours: refused with the counts, and nothing is
recorded, so fresh hours accumulate until there are enough. Each decision is thus an
ordinary level-alpha test on evidence no earlier decision used, and decisions come at
most once per `min_hours` new hours. Chosen over alpha spending because the gate runs
indefinitely (a spending rule needs a horizon fixed in advance and leaves ever smaller
levels) and each decision's figures then read as the plain test they are.

The rule, on those hours, squared-error loss, one-sided tests at level `alpha`:

* nothing serves, or the serving checkpoint records no training window (its errors may
  be in-sample, so they are no evidence; its MSE is shown only): the candidate must be
  significantly more accurate than the zero-return forecast (Diebold-Mariano, HLN
  correction: p < alpha). Non-inferiority is not enough here: real skill is near zero,
  and a margin would admit a model worse than serving nothing;
* an incumbent whose window is recorded: the candidate must not be significantly worse
  than the zero-return forecast (refused when p(zero more accurate) < alpha), and either
  significantly more accurate than the incumbent (p < alpha: "superior") or non-inferior
  to it: the one-sided (1 - alpha) upper bound of MSE_candidate - MSE_incumbent below
  margin_used x MSE_incumbent, where margin_used = min(margin, resolvable) and
  `resolvable` = (z_(1-alpha) + z_0.8) x se(loss differential) / MSE_incumbent is the
  smallest relative MSE difference these hours detect at level alpha with power 0.8.
  A configured margin wider than what the hours resolve would wave through a candidate
  worse by more than the evidence can see, so the hours cap it: the margin shrinks as
  evidence grows, and `margin` is only the ceiling (0: superiority only);
* the served intervals and direction probabilities must pass calibration on the same
  hours (`served_calibration`): the 80% and 95% adaptive conformal intervals with
  Kupiec's and Christoffersen's p at least alpha, and Brier scores not significantly
  worse than the base-rate forecast. A failure refuses the candidate, naming the test
  and its figures. A model without a predictive variance (or a direction head) serves no
  interval (probabilities), so there is nothing of that kind to check;
* a candidate that records no training window is refused.

For one-step forecasts the HLN-corrected DM statistic is the paired t statistic of
the loss differential, so the confidence bound uses the same standard error as the
DM test (a test checks that at margin 0 the two p-values agree).

Served intervals. `forecast_next_hour` serves forecast +- q x sd with the model's
predictive sd and the adaptive conformal quantiles q of the same procedure the gate
tested, rerun on the served model's newest out-of-sample hours (`served_quantiles`),
and says so in the forecast.
"""

import fcntl
import math
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import torch
from scipy import stats

from workflows.data.sources.candles import ts_bounds
from workflows.io import StoredFileError, read_json_object, reading_stored, write_json_atomic
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
from workflows.serving.served_calibration import (
    MIN_SERVING_HOURS,
    SERVING_HOURS,
    direction_check,
    interval_checks,
    next_quantiles,
)
from workflows.stats.significance import diebold_mariano

POINTER = "production.json"
LAST_DECISION = "last_decision.json"  # the last hour a decision judged: later decisions use only hours after it
LOCK_FILE = ".production.lock"  # serialises the gate per symbol (`promotion_lock`)
POWER = 0.8  # power at which the resolvable MSE difference is computed


@dataclass(frozen=True)
class GateConfig:
    margin: float = 0.02  # ceiling of the non-inferiority margin (fraction of the incumbent's MSE); see module doc
    alpha: float = 0.05  # level of every one-sided test (the bound is a one-sided 1 - alpha bound)
    min_hours: int = 100  # fewer fresh out-of-sample hours than this: no decision, refused

    def __post_init__(self):
        if not 0 <= self.margin < 1:
            raise ValueError(f"margin must be in [0, 1), got {self.margin}")
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {self.alpha}")
        if self.min_hours < 10:
            raise ValueError(f"min_hours must be at least 10 (the Diebold-Mariano test needs 10), got {self.min_hours}")


@dataclass(frozen=True)
class GateDecision:
    promoted: bool
    reason: str
    hours: int  # forecast hours compared: fresh and out of sample for both models
    mse_candidate: float | None = None
    mse_current: float | None = None  # the incumbent's; None when nothing serves
    mse_zero: float | None = None
    skill_vs_zero: float | None = None  # 1 - MSE_candidate / MSE_zero
    basis: str = ""  # "superior" | "non-inferior" when promoted, "" when refused
    comparator: str = ""  # "incumbent" | "zero-return forecast"
    alpha: float = GateConfig.alpha
    margin: float = GateConfig.margin  # the configured ceiling
    margin_used: float | None = None  # min(margin, resolvable_excess): the non-inferiority margin applied
    resolvable_excess: float | None = None  # smallest MSE difference the hours resolve (power 0.8), / comparator MSE
    min_hours: int = GateConfig.min_hours
    hours_offered: int = 0
    hours_in_sample_candidate: int = 0  # offered hours at or before the candidate's last target hour
    hours_in_sample_current: int = 0  # ... the incumbent's
    hours_without_window: int = 0  # offered hours where a model has no complete input window
    hours_already_decided: int = 0  # offered hours at or before the previous decision's last hour
    decided_through: str | None = None  # the previous decision's last hour (None: this is the first decision)
    first_hour: str | None = None  # first and last forecast hour compared (UTC)
    last_hour: str | None = None
    candidate_last_target: str | None = None
    current_last_target: str | None = None
    current_window_known: bool | None = None  # None: nothing serves
    p_better_than_current: float | None = None  # DM: candidate more accurate than the incumbent
    p_noninferior_to_current: float | None = None  # H0: MSE_c - MSE_cur >= margin_used x MSE_cur
    upper_excess_vs_current: float | None = None  # one-sided upper bound of (MSE_c - MSE_cur) / MSE_cur
    p_better_than_zero: float | None = None  # DM: candidate more accurate than the zero forecast
    p_zero_better: float | None = None  # DM: the zero forecast more accurate than the candidate
    upper_excess_vs_zero: float | None = None  # one-sided upper bound of (MSE_c - MSE_zero) / MSE_zero
    # the served intervals (served_calibration): first `calibration_hours` calibrate, `coverage_hours` test
    calibration_hours: int | None = None
    coverage_hours: int | None = None
    coverage_80: float | None = None  # of the conformal interval on the tested hours
    kupiec_p_80: float | None = None
    christoffersen_p_80: float | None = None
    raw_coverage_80: float | None = None  # the Gaussian interval on the same hours, before calibration
    conformal_q80: float | None = None  # the quantile (in predictive sds) served after promotion
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

    @property
    def decided(self) -> bool:
        """The tests ran on these hours: they are no longer fresh evidence for a later decision."""
        return self.mse_candidate is not None and self.last_hour is not None

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


def noninferiority(loss_model: np.ndarray, loss_ref: np.ndarray, margin: float, alpha: float) -> tuple[float, float]:
    """One-sided non-inferiority test of a model against a reference on the same hours.

    H0: E[loss_model - loss_ref] >= margin x mean(loss_ref). Returns the p-value and
    the upper end of the one-sided (1 - alpha) confidence bound of the mean loss
    difference, relative to the reference's mean loss. The standard error is the
    HLN-corrected Diebold-Mariano one at horizon 1 (the paired t statistic), so with
    margin 0 the p-value equals `diebold_mariano(...).p_better`.
    """
    d = np.asarray(loss_model, dtype=float) - np.asarray(loss_ref, dtype=float)
    n = len(d)
    ref = float(np.mean(loss_ref))
    if ref <= 0:
        raise ValueError("the reference forecast has zero loss on these hours: nothing to compare against")
    mean, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(n))
    delta = margin * ref
    if se == 0:
        return (0.0 if mean < delta else 1.0), mean / ref
    p = float(stats.t.cdf((mean - delta) / se, df=n - 1))
    upper = mean + float(stats.t.ppf(1 - alpha, df=n - 1)) * se
    return p, upper / ref


def resolvable_excess(loss_model: np.ndarray, loss_ref: np.ndarray, alpha: float, power: float = POWER) -> float:
    """Smallest mean loss difference a one-sided level-`alpha` test detects with `power` on these hours,
    relative to the reference's mean loss: (z_(1-alpha) + z_power) x se(loss_model - loss_ref) / mean(loss_ref)."""
    d = np.asarray(loss_model, dtype=float) - np.asarray(loss_ref, dtype=float)
    se = float(d.std(ddof=1) / math.sqrt(len(d)))
    z = float(stats.norm.ppf(1 - alpha) + stats.norm.ppf(power))
    return z * se / float(np.mean(loss_ref))


def _calibration(
    y: np.ndarray, forecast: np.ndarray, sd: np.ndarray | None, probs: np.ndarray | None, threshold: float, alpha: float
) -> tuple[dict, list[str]]:
    """The served intervals' and probabilities' figures (GateDecision fields) and the failures at `alpha`."""
    fields: dict = {}
    failures: list[str] = []
    if sd is not None:
        checks = interval_checks(y, forecast, sd)
        for level, c in checks.items():
            pct = round(100 * level)
            fields |= {
                f"coverage_{pct}": c.coverage,
                f"kupiec_p_{pct}": c.kupiec_p,
                f"christoffersen_p_{pct}": c.christoffersen_p,
                f"raw_coverage_{pct}": c.raw_coverage,
                f"conformal_q{pct}": c.q_served,
                f"conformal_level_{pct}": c.level_served,
            }
            fields |= {"calibration_hours": c.calibration_hours, "coverage_hours": c.tested_hours}
            failures += [f for f in [c.failure(alpha)] if f]
    if probs is not None:
        d = direction_check(probs, direction_classes(y, threshold))
        fields |= {
            "brier": d.brier,
            "brier_base_rate": d.base_rate_brier,
            "brier_skill": d.skill,
            "p_base_rate_better": d.p_base_rate_better,
        }
        failures += [f for f in [d.failure(alpha)] if f]
    return fields, failures


def decide(
    y: np.ndarray,
    f_candidate: np.ndarray,
    f_current: np.ndarray | None,
    config: GateConfig = GateConfig(),
    sd_candidate: np.ndarray | None = None,
    probs_candidate: np.ndarray | None = None,
    direction_threshold: float = WindowSpec.direction_threshold,
    **context,
) -> GateDecision:
    """The rule (module docstring) on aligned next-hour returns and forecasts, hours in time order.

    `f_current` is the incumbent's forecast when it is a valid comparator (its window is
    known and these hours are out of sample for it), else None. `sd_candidate` and
    `probs_candidate` are what the candidate would serve besides the point forecast (its
    predictive sd, its DOWN / STABLE / UP probabilities), None when it serves none; they
    are checked for calibration. `context` carries the hour bookkeeping into the decision."""
    y = np.asarray(y, dtype=float)
    e_c, e_z = np.asarray(f_candidate, dtype=float) - y, -y
    loss_c, loss_z = e_c**2, e_z**2
    a, m = config.alpha, config.margin
    common = {"hours": len(y), "alpha": a, "margin": m, "min_hours": config.min_hours, **context}
    mse_c, mse_z = float(loss_c.mean()), float(loss_z.mean())
    if mse_z <= 0:
        return GateDecision(
            False,
            "the compared hours have no price movement: the zero-return forecast is exact",
            mse_candidate=mse_c,
            mse_zero=mse_z,
            **common,
        )
    p_zero_better = diebold_mariano(e_z, e_c).p_better
    p_beats_zero = diebold_mariano(e_c, e_z).p_better
    skill = 1 - mse_c / mse_z
    fields = {
        "comparator": "incumbent" if f_current is not None else "zero-return forecast",
        "mse_candidate": mse_c,
        "mse_zero": mse_z,
        "skill_vs_zero": skill,
        "p_better_than_zero": p_beats_zero,
        "p_zero_better": p_zero_better,
        "upper_excess_vs_zero": noninferiority(loss_c, loss_z, 0.0, a)[1],
        **common,
    }
    checked, failures = _calibration(
        y, np.asarray(f_candidate, dtype=float), sd_candidate, probs_candidate, direction_threshold, a
    )
    fields |= checked
    where = f"on {len(y)} fresh out-of-sample hours"
    if f_current is None:
        res = resolvable_excess(loss_c, loss_z, a)
        fields["resolvable_excess"] = res
        note = (
            ""
            if context.get("current_window_known") is not False
            else (
                "; the serving checkpoint records no training window, so its errors may be in-sample and it was not "
                "used as the comparator"
            )
        )
        if p_beats_zero >= a:
            return GateDecision(
                False,
                f"not significantly more accurate than the zero-return forecast {where} (DM p = {p_beats_zero:.3g}; "
                f"skill {skill:+.2%}, these hours resolve about {res:.2%}){note}",
                **fields,
            )
        basis = "superior"
        claim = (
            f"significantly more accurate than the zero-return forecast {where} (DM p = {p_beats_zero:.3g} < {a}; "
            f"skill {skill:+.2%}){note}"
        )
    else:
        e_p = np.asarray(f_current, dtype=float) - y
        res = resolvable_excess(loss_c, e_p**2, a)
        m_used = min(m, res)
        p_ni, up_p = noninferiority(loss_c, e_p**2, m_used, a)
        p_sup = diebold_mariano(e_c, e_p).p_better
        fields |= {
            "mse_current": float(np.mean(e_p**2)),
            "resolvable_excess": res,
            "margin_used": m_used,
            "p_better_than_current": p_sup,
            "p_noninferior_to_current": p_ni,
            "upper_excess_vs_current": up_p,
        }
        if p_zero_better < a:
            return GateDecision(
                False,
                f"significantly worse than the zero-return forecast {where} (DM p = {p_zero_better:.3g} < {a})",
                **fields,
            )
        zero_ok = f"not significantly worse than the zero-return forecast (DM p = {p_zero_better:.3g})"
        margin_text = f"{m_used:.2%} (the {m:.1%} ceiling capped at the {res:.2%} these hours resolve)"
        if p_sup < a:
            basis = "superior"
            claim = f"significantly more accurate than the incumbent {where} (DM p = {p_sup:.3g} < {a}); " + zero_ok
        elif p_ni < a:
            basis = "non-inferior"
            claim = (
                f"non-inferior to the incumbent within {margin_text} {where}: its MSE exceeds the incumbent's by at "
                f"most {up_p:+.2%} ({1 - a:.0%} bound, p = {p_ni:.3g}; superiority not shown, DM p = {p_sup:.3g}); "
                + zero_ok
            )
        else:
            return GateDecision(
                False,
                f"neither significantly more accurate than the incumbent (DM p = {p_sup:.3g}) nor non-inferior "
                f"within {margin_text} {where}: its MSE may exceed the incumbent's by up to {up_p:+.2%} "
                f"({1 - a:.0%} bound, p = {p_ni:.3g})",
                **fields,
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
    decided_through: int | None = None,
) -> GateDecision:
    """Decide whether `candidate` replaces `current` on the test hours ending at `end_ts` (module docstring).

    `decided_through`: the Unix hour through which an earlier decision judged (`last_decided_hour`);
    only forecast hours after it are fresh evidence. None: the first decision, every hour counts."""
    end_ts = np.sort(np.asarray(end_ts))
    base = {"alpha": config.alpha, "margin": config.margin, "min_hours": config.min_hours, "hours_offered": len(end_ts)}
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
    fresh = forecast_hour > decided_through if decided_through is not None else np.ones(len(end_ts), dtype=bool)
    use = ok_window & after_c & after_p & fresh
    info = {
        **base,
        "hours_in_sample_candidate": int((~after_c).sum()),
        "hours_in_sample_current": int((~after_p).sum()),
        "hours_without_window": int((~ok_window).sum()),
        "hours_already_decided": int((~fresh).sum()),
        "decided_through": iso_hour(decided_through) if decided_through is not None else None,
        "candidate_last_target": iso_hour(cand_last),
        "current_window_known": known,
        "current_last_target": iso_hour(cur_last) if cur_last is not None else None,
    }
    n = int(use.sum())
    if n:
        info |= {
            "first_hour": iso_hour(int(forecast_hour[use].min())),
            "last_hour": iso_hour(int(forecast_hour[use].max())),
        }
    if n < config.min_hours:
        inc = f", incumbent's up to {info['current_last_target']}" if cur_last is not None else ""
        judged = (
            f", {info['hours_already_decided']} already judged by the decision through {info['decided_through']}"
            if decided_through is not None
            else ""
        )
        return GateDecision(
            False,
            f"only {n} of {len(end_ts)} test hours are fresh, out of sample for both models and have complete "
            f"windows ({info['hours_in_sample_candidate']} inside the candidate's training/validation targets, "
            f"{info['hours_in_sample_current']} inside the incumbent's, {info['hours_without_window']} without a "
            f"window{judged}; candidate's targets up to {info['candidate_last_target']}{inc}); the gate needs "
            f"{config.min_hours}",
            n,
            **info,
        )
    hours = end_ts[use]
    out = _forecast(candidate, features, hours)
    y = out["y"]
    f_p = None
    if current is not None:
        cur = _forecast(current, features, hours)
        if not np.array_equal(y, cur["y"]):
            raise RuntimeError("candidate and incumbent targets differ on the same hours")
        f_p = cur["ret"]
        if not known:  # a legacy incumbent: its MSE is shown, but it is no evidence
            info["mse_current"] = float(np.mean((f_p - y) ** 2))
            f_p = None
    return decide(
        y,
        out["ret"],
        f_p,
        config,
        sd_candidate=out.get("sd"),
        probs_candidate=out.get("probs"),
        direction_threshold=_spec(candidate).direction_threshold,
        **info,
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


def last_decided_hour(folder: Path) -> int | None:
    """The last hour an earlier decision judged (None: none has): later decisions use only hours after it.

    Read from `last_decision.json` (written by every decision that ran its tests) and from the
    pointer's `gate` record (a promotion, possibly written before the ledger existed); the later wins."""
    hours = []
    ledger = folder / LAST_DECISION
    if ledger.exists():
        hours.append(_ledger_hour(ledger))
    pointer = read_pointer(folder)
    if pointer is not None and (pointer.get("gate") or {}).get("last_hour"):
        hours.append(parse_iso_hour(pointer["gate"]["last_hour"]))
    return max(hours) if hours else None


def _ledger_hour(ledger: Path) -> int:
    """The hour `last_decision.json` says was judged through. A ledger that cannot be read (truncated, edited,
    an older format) never stops the gate or the forecast refresh after it: the hour it was written in bounds
    what its decision judged from above, so the next decision uses only hours after that (and rewrites it)."""
    remedy = "the next decision that runs its tests rewrites it"
    try:
        record = read_json_object(ledger, "the decision record", remedy, keys=("decided_through",))
        with reading_stored(ledger, "the decision record", remedy):
            hour = parse_iso_hour(record["decided_through"])
        return hour
    except StoredFileError as exc:
        written = int(ledger.stat().st_mtime // 3600)
        when = datetime.fromtimestamp(written * 3600, tz=timezone.utc)
        warnings.warn(
            f"{exc}; meanwhile the hour it was written, {when:%Y-%m-%d %H:00} UTC, counts as the last hour judged",
            stacklevel=2,
        )
        return written


def record_decision(folder: Path, candidate_path: str, decision: GateDecision) -> None:
    """Write `last_decision.json`: the last hour this decision judged, and what it decided."""
    write_json_atomic(
        folder / LAST_DECISION,
        {
            "decided_through": decision.last_hour,
            "decided_at": datetime.now(timezone.utc).isoformat(),
            "candidate": Path(candidate_path).name,
            "promoted": decision.promoted,
            "hours": decision.hours,
            "reason": decision.reason,
        },
    )


@contextmanager
def promotion_lock(folder: Path) -> Iterator[None]:
    """Hold the symbol's promotion lock (an exclusive `flock` on `.production.lock` in `folder`).

    Read the incumbent, judge, write the pointer: all inside it, so two runs never promote
    against the same incumbent (the second waits and then judges against the first's winner)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def promote(
    folder: Path,
    candidate_path: str,
    candidate_sha256: str,
    judge: Callable[[Checkpoint | None, int | None], GateDecision],
) -> tuple[GateDecision, dict | None]:
    """Judge the candidate against the incumbent and move the pointer if promoted, under the symbol's lock.

    `judge(incumbent, decided_through)` returns the decision (`gate(...)` with the candidate bound;
    `decided_through` from `last_decided_hour`). A decision that ran its tests is recorded, so its
    hours are not fresh evidence again. Returns the decision and the pointer in force afterwards
    (None: nothing serves)."""
    with promotion_lock(folder):
        decision = judge(load_current(folder), last_decided_hour(folder))
        if decision.decided:
            record_decision(folder, candidate_path, decision)
        if decision.promoted:
            return decision, write_pointer(folder, candidate_path, candidate_sha256, decision)
        return decision, read_pointer(folder)


def served_quantiles(ckpt: Checkpoint, features: pl.DataFrame) -> tuple[dict[float, tuple[float, float]], str]:
    """The conformal quantiles (in predictive sds) and adapted levels for the next hour, and how they were found.

    Adaptive conformal (`served_calibration`) over the model's newest hours with an outcome that are out of
    sample for it (after its last training/validation target), at most `SERVING_HOURS`. Empty, with the
    reason, when the model records no training window or has fewer than `MIN_SERVING_HOURS` such hours."""
    last = last_target_hour(ckpt)
    if last is None:
        return {}, "none served: the model records no training window, so no hours can be asserted out of sample"
    frame, _, _, _, ts_hours = _prepare(features, _spec(ckpt))
    end_ts = frame["ts"].to_numpy()[ts_hours + 1 > last]
    end_ts = end_ts[has_window(ckpt, features, end_ts)][-SERVING_HOURS:]
    if len(end_ts) < MIN_SERVING_HOURS:
        return {}, (
            f"none served: {len(end_ts)} out-of-sample hours with an outcome after the model's last target "
            f"{iso_hour(last)}; calibration needs {MIN_SERVING_HOURS}"
        )
    out = _forecast(ckpt, features, end_ts)
    quantiles = next_quantiles(out["y"], out["ret"], out["sd"])
    first, final = (iso_hour(int(h) + 1) for h in end_ts[[0, -1]].astype("datetime64[h]").astype(np.int64))
    (q80, l80), (q95, l95) = quantiles[0.80], quantiles[0.95]
    return quantiles, (
        f"adaptive conformal scaled by the model's predictive sd (forecast +- q x sd) on its {len(end_ts)} newest "
        f"out-of-sample hours, {first} to {final}: q80 = {q80:.3f} (level {l80:.1%}), q95 = {q95:.3f} "
        f"(level {l95:.1%})"
    )


def forecast_next_hour(ckpt: Checkpoint | None, features: pl.DataFrame) -> dict:
    """Next-hour forecast from the newest complete window; the zero forecast when no model serves.

    The 80% / 95% intervals are the model's predictive sd times the conformal quantiles of
    `served_quantiles`; `interval_calibration` says how they were found (or why none is served)."""
    last = ts_bounds(features)[1]
    base = {"as_of_candle": last.isoformat(), "forecast_hour": (last + timedelta(hours=1)).isoformat()}
    if ckpt is None:
        return {
            **base,
            "model": "zero-return forecast (no model has passed the promotion gate)",
            "return_pct": 0.0,
            "interval_80_pct": None,
            "interval_95_pct": None,
            "interval_calibration": None,
            "direction_probabilities": None,
        }
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
    result = {**base, "model": ckpt.path.name, "return_pct": 100 * ret}
    if "sd" in served:
        sd = float(served["sd"][0])
        quantiles, note = served_quantiles(ckpt, features)
        for level, key in ((0.80, "interval_80_pct"), (0.95, "interval_95_pct")):
            q = quantiles[level][0] if quantiles else None
            result[key] = [100 * (ret - q * sd), 100 * (ret + q * sd)] if q is not None else None
        result["interval_calibration"] = note
    if "probs" in served:
        result["direction_probabilities"] = dict(zip(DIRECTION_NAMES, served["probs"][0].tolist()))
    return result
