"""The promotion gate and the served forecast.

A production pointer (`production.json` beside a symbol's checkpoints) names the
checkpoint that serves forecasts. A candidate replaces it only on evidence, judged
on forecast hours that neither model saw while it was fitted.

Out of sample. Each checkpoint records the last hour its training and validation
targets reached (`training_window`: the last window end of either split plus the
target horizon, since a window ending at t has targets up to t + vol_horizon). A
test window ending at t forecasts hour t + 1, so it is used only when t + 1 is after
both models' last target hour. Fewer than `min_hours` such hours: refused, with the
counts in the reason.

The rule, on those hours, squared-error loss, one-sided tests at level `alpha`:

* with an incumbent whose window is recorded, the candidate is promoted when it is
  (a) not significantly worse than the zero-return forecast (one-sided
  Diebold-Mariano, HLN correction: refused when p(zero more accurate) < alpha), and
  (b) either significantly more accurate than the incumbent (DM p < alpha:
  "superior") or non-inferior to it within `margin`: the upper end of the one-sided
  (1 - alpha) confidence bound of MSE_candidate - MSE_incumbent is below
  margin x MSE_incumbent. Superiority implies non-inferiority (same standard error),
  so this is one test whose reason names the stronger claim shown;
* with no incumbent, the candidate must satisfy (a) and be non-inferior to the
  zero-return forecast within `margin` (same bound, against the zero forecast's MSE);
* with an incumbent that records no training window (a legacy checkpoint), its
  errors may be in-sample, so they are no evidence either way: the candidate is
  judged as if nothing served (non-inferior to zero) and replaces the legacy
  checkpoint if it passes; otherwise the legacy checkpoint keeps serving;
* a candidate that records no training window is refused.

For one-step forecasts the HLN-corrected DM statistic is the paired t statistic of
the loss differential, so the confidence bound uses the same standard error as the
DM test (a test checks that at margin 0 the two p-values agree).
"""

import fcntl
import json
import math
import os
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
from workflows.io import write_json_atomic
from workflows.ml.checkpoints import Checkpoint, load_checkpoint
from workflows.ml.training import predict
from workflows.ml.windows import (
    DIRECTION_NAMES,
    LAST_TARGET_KEY,
    WindowSpec,
    _prepare,
    iso_hour,
    parse_iso_hour,
)
from workflows.stats.significance import diebold_mariano

POINTER = "production.json"
LOCK_FILE = ".production.lock"  # serialises the gate per symbol (`promotion_lock`)


@dataclass(frozen=True)
class GateConfig:
    margin: float = 0.02  # non-inferiority margin, as a fraction of the comparator's MSE
    alpha: float = 0.05  # level of every one-sided test (the bound is a one-sided 1 - alpha bound)
    min_hours: int = 100  # fewer out-of-sample hours than this: no decision, refused

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
    hours: int  # forecast hours compared: out of sample for both models
    mse_candidate: float | None = None
    mse_current: float | None = None  # the incumbent's; None when nothing serves
    mse_zero: float | None = None
    basis: str = ""  # "superior" | "non-inferior" when promoted, "" when refused
    comparator: str = ""  # "incumbent" | "zero-return forecast"
    alpha: float = GateConfig.alpha
    margin: float = GateConfig.margin
    min_hours: int = GateConfig.min_hours
    hours_offered: int = 0
    hours_in_sample_candidate: int = 0  # offered hours at or before the candidate's last target hour
    hours_in_sample_current: int = 0  # ... the incumbent's
    hours_without_window: int = 0  # offered hours where a model has no complete input window
    first_hour: str | None = None  # first and last forecast hour compared (UTC)
    last_hour: str | None = None
    candidate_last_target: str | None = None
    current_last_target: str | None = None
    current_window_known: bool | None = None  # None: nothing serves
    p_better_than_current: float | None = None  # DM: candidate more accurate than the incumbent
    p_noninferior_to_current: float | None = None  # H0: MSE_c - MSE_cur >= margin x MSE_cur
    upper_excess_vs_current: float | None = None  # one-sided upper bound of (MSE_c - MSE_cur) / MSE_cur
    p_better_than_zero: float | None = None  # DM: candidate more accurate than the zero forecast
    p_zero_better: float | None = None  # DM: the zero forecast more accurate than the candidate
    p_noninferior_to_zero: float | None = None
    upper_excess_vs_zero: float | None = None

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


def _forecast(ckpt: Checkpoint, features: pl.DataFrame, end_ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = inputs_at(ckpt, features, end_ts)
    return predict(ckpt.model, x)["ret"].astype(np.float64) * ckpt.scaler.target_scale, y


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


def decide(
    y: np.ndarray, f_candidate: np.ndarray, f_current: np.ndarray | None, config: GateConfig = GateConfig(), **context
) -> GateDecision:
    """The rule (module docstring) on aligned next-hour returns and forecasts.

    `f_current` is the incumbent's forecast when it is a valid comparator (its
    window is known and these hours are out of sample for it), else None. `context`
    carries the hour bookkeeping into the decision."""
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
    p_nz, up_z = noninferiority(loss_c, loss_z, m, a)
    vs_zero = {
        "mse_candidate": mse_c,
        "mse_zero": mse_z,
        "p_better_than_zero": diebold_mariano(e_c, e_z).p_better,
        "p_zero_better": diebold_mariano(e_z, e_c).p_better,
        "p_noninferior_to_zero": p_nz,
        "upper_excess_vs_zero": up_z,
    }
    where = f"on {len(y)} out-of-sample hours"
    comparator = "incumbent" if f_current is not None else "zero-return forecast"
    fields = {"comparator": comparator, **vs_zero, **common}
    if f_current is not None:
        e_p = np.asarray(f_current, dtype=float) - y
        p_ni, up_p = noninferiority(loss_c, e_p**2, m, a)
        fields |= {
            "mse_current": float(np.mean(e_p**2)),
            "p_better_than_current": diebold_mariano(e_c, e_p).p_better,
            "p_noninferior_to_current": p_ni,
            "upper_excess_vs_current": up_p,
        }
    if vs_zero["p_zero_better"] < a:
        return GateDecision(
            False,
            f"significantly worse than the zero-return forecast {where} (DM p = {vs_zero['p_zero_better']:.3g} < {a})",
            **fields,
        )
    if f_current is None:
        note = (
            ""
            if context.get("current_window_known") is not False
            else (
                "; the serving checkpoint records no training window, so its errors may be in-sample and it was not "
                "used as the comparator"
            )
        )
        if p_nz < a:
            basis = "superior" if vs_zero["p_better_than_zero"] < a else "non-inferior"
            return GateDecision(
                True,
                f"{basis} to the zero-return forecast {where}: its MSE exceeds the zero forecast's by at most "
                f"{up_z:+.2%} ({1 - a:.0%} bound; margin {m:.1%}, p = {p_nz:.3g}){note}",
                basis=basis,
                **fields,
            )
        return GateDecision(
            False,
            f"not shown non-inferior to the zero-return forecast within {m:.1%} {where}: its MSE may exceed the "
            f"zero forecast's by up to {up_z:+.2%} ({1 - a:.0%} bound, p = {p_nz:.3g}){note}",
            **fields,
        )
    p_sup = fields["p_better_than_current"]
    zero_ok = f"not significantly worse than the zero-return forecast (DM p = {vs_zero['p_zero_better']:.3g})"
    if p_sup < a:
        return GateDecision(
            True,
            f"significantly more accurate than the incumbent {where} (DM p = {p_sup:.3g} < {a}); " + zero_ok,
            basis="superior",
            **fields,
        )
    if p_ni < a:
        return GateDecision(
            True,
            f"non-inferior to the incumbent within {m:.1%} {where}: its MSE exceeds the "
            f"incumbent's by at most {up_p:+.2%} ({1 - a:.0%} bound, p = {p_ni:.3g}; superiority "
            f"not shown, DM p = {p_sup:.3g}); " + zero_ok,
            basis="non-inferior",
            **fields,
        )
    return GateDecision(
        False,
        f"neither significantly more accurate than the incumbent (DM p = {p_sup:.3g}) nor "
        f"non-inferior within {m:.1%} {where}: its MSE may exceed the incumbent's by up to "
        f"{up_p:+.2%} ({1 - a:.0%} bound, p = {p_ni:.3g})",
        **fields,
    )


def gate(
    candidate: Checkpoint,
    current: Checkpoint | None,
    features: pl.DataFrame,
    end_ts: np.ndarray,
    config: GateConfig = GateConfig(),
) -> GateDecision:
    """Decide whether `candidate` replaces `current` on the test hours ending at `end_ts` (module docstring)."""
    end_ts = np.asarray(end_ts)
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
    n = int(use.sum())
    if n:
        info |= {
            "first_hour": iso_hour(int(forecast_hour[use].min())),
            "last_hour": iso_hour(int(forecast_hour[use].max())),
        }
    if n < config.min_hours:
        inc = f", incumbent's up to {info['current_last_target']}" if cur_last is not None else ""
        return GateDecision(
            False,
            f"only {n} of {len(end_ts)} test hours are out of sample for both models and have complete windows "
            f"({info['hours_in_sample_candidate']} inside the candidate's training/validation targets, "
            f"{info['hours_in_sample_current']} inside the incumbent's, {info['hours_without_window']} without a "
            f"window; candidate's targets up to {info['candidate_last_target']}{inc}); the gate needs "
            f"{config.min_hours}",
            n,
            **info,
        )
    hours = end_ts[use]
    f_c, y = _forecast(candidate, features, hours)
    f_p = None
    if current is not None:
        f_p, y_p = _forecast(current, features, hours)
        if not np.array_equal(y, y_p):
            raise RuntimeError("candidate and incumbent targets differ on the same hours")
        if not known:  # a legacy incumbent: its MSE is shown, but it is no evidence
            info["mse_current"] = float(np.mean((f_p - y) ** 2))
            f_p = None
    return decide(y, f_c, f_p, config, **info)


def read_pointer(folder: Path) -> dict | None:
    """The production pointer in `folder`, its `path` resolved to an absolute path (None: nothing promoted).

    The file stores the checkpoint's path relative to the pointer's own folder (the
    checkpoints lie beside it), so a moved or re-mounted data folder keeps its pointer; an
    absolute path written by an older version is read as it is."""
    path = folder / POINTER
    if not path.exists():
        return None
    pointer = json.loads(path.read_text())
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
            f"{folder / POINTER} names the serving checkpoint {path}, which does not exist: restore that file "
            f"(sha256 {pointer['sha256'][:16]}...), or delete {POINTER} to serve the zero-return forecast until "
            "the gate promotes a model"
        )
    return load_checkpoint(path, pointer["sha256"])


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
    judge: Callable[[Checkpoint | None], GateDecision],
) -> tuple[GateDecision, dict | None]:
    """Judge the candidate against the incumbent and move the pointer if promoted, under the symbol's lock.

    `judge(incumbent)` returns the decision (`gate(...)` with the candidate bound). Returns
    the decision and the pointer in force afterwards (None: nothing serves)."""
    with promotion_lock(folder):
        decision = judge(load_current(folder))
        if decision.promoted:
            return decision, write_pointer(folder, candidate_path, candidate_sha256, decision)
        return decision, read_pointer(folder)


def forecast_next_hour(ckpt: Checkpoint | None, features: pl.DataFrame) -> dict:
    """Next-hour forecast from the newest complete window; the zero forecast when no model serves."""
    last = ts_bounds(features)[1]
    base = {"as_of_candle": last.isoformat(), "forecast_hour": (last + timedelta(hours=1)).isoformat()}
    if ckpt is None:
        return {
            **base,
            "model": "zero-return forecast (no model has passed the promotion gate)",
            "return_pct": 0.0,
            "interval_80_pct": None,
            "interval_95_pct": None,
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
        out = predict(ckpt.model, window)
    scale = ckpt.scaler.target_scale
    ret = float(out["ret"][0] * scale)
    result = {**base, "model": ckpt.path.name, "return_pct": 100 * ret}
    if "log_var" in out:
        sd = math.sqrt(math.exp(float(out["log_var"][0]))) * scale
        result["interval_80_pct"] = [100 * (ret - 1.2816 * sd), 100 * (ret + 1.2816 * sd)]
        result["interval_95_pct"] = [100 * (ret - 1.96 * sd), 100 * (ret + 1.96 * sd)]
    if "direction_logits" in out:
        probs = torch.softmax(torch.as_tensor(out["direction_logits"][0]), -1).tolist()
        result["direction_probabilities"] = dict(zip(DIRECTION_NAMES, probs))
    return result
