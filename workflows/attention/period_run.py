"""One forecast period's attention analysis on disk, and the attention tensors of a symbol: the work behind the
`period_attention` and `attention_tensors` assets (`workflows.defs.assets_attention` keeps only the Dagster glue).

A period's analysis (`analyse_period`) reads that month's period models on that month's logged hours, with its
shuffled-target controls kept per month and architecture (`sanity.ControlStore`), and stores one evidence file
per model (`periods.save_evidence`). Its evidence is fingerprinted on what made it (`periods.evidence_fingerprint`):
the same code, checkpoints and hours reuse it untouched.

A day that costs a day: when only new hours arrived (the same code and checkpoints, and the earlier hours' inputs
fingerprint to what the stored evidence was made from), the month's evidence is appended, not redone:

* the new windows' own evidence is computed on them alone and appended: their attention tensors and the controls'
  (the controls are read back from the month's store, never retrained), the uniform-ablation losses, the deletion
  test's base, top-k, recency and size changes, the trailing volatility and the hours;
* integrated gradients are kept once the month has `IG_WINDOWS` logged hours: they are read on the month's first
  `IG_WINDOWS` windows (`sanity.attribution_evidence`), which no later hour changes; before that they are redone;
* the permutation nulls of the deletion test (position-matched and random-hours draws: each draw permutes every
  window) are recomputed over every window when `NULLS_EVERY_DAYS` days of hours have arrived since they were last
  computed, and when the month closes (all its hours logged); between, they are kept with the date they were
  computed and the newest hour they cover, and read as per-window means (`sanity.DeletionEvidence.null_windows`).
  The report prints that date beside the month's p-values;
* every figure is then read off the appended evidence exactly as the pooled analysis reads it (`periods.pool`,
  which for one period equals `analysis.analyse`).

A change to an earlier hour's inputs, the code, a checkpoint or the protocol (or the deletion test's window stride,
`Protocol.deletion_windows`) recomputes the month in full.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

from workflows.attention import sanity
from workflows.attention.analysis import Protocol, analyse_all, control_outputs, trailing_volatility
from workflows.attention.extract import save_attention, summary_row
from workflows.attention.periods import (
    PeriodEvidence,
    evidence_fingerprint,
    evidence_of,
    load_evidence,
    pool_all,
    reading_of,
    save_evidence,
    stored_fingerprint,
)
from workflows.attention.sanity import ControlStore
from workflows.attention.volatility import SEASONAL_LAG
from workflows.io import StoredFileError
from workflows.ml.model_ref import ModelRef
from workflows.ml.periods import ForecastPeriod, PeriodConfig
from workflows.ml.placement import place_training
from workflows.ml.predictions import period_window_data, predictions
from workflows.ml.profiles import model_kinds
from workflows.ml.windows import Split, WindowData

# A period with fewer logged hours is not analysed (the block bootstrap's blocks are 48 windows long).
MIN_PERIOD_WINDOWS = 96
# The month's deletion nulls are redrawn over every window once this many days of hours arrived since their last draw.
NULLS_EVERY_DAYS = 7
# Integrated gradients read the month's first windows only (`sanity.attribution_evidence`'s `max_windows`).
IG_WINDOWS = 128


@dataclass
class PeriodOutcome:
    """What `analyse_period` did: the asset's metadata."""

    windows: int
    analysed: bool
    reused: bool = False
    appended: int = 0  # windows appended to the stored evidence (0: reused or computed in full)
    nulls_redrawn: bool = True  # the deletion test's nulls cover every window
    controls_trained: int = 0
    controls_reused: int = 0
    verdicts: list[dict] = field(default_factory=list)  # one row per model: its verdict's fields as text


def load_period_models(table: pl.DataFrame, refs: dict[str, ModelRef], period: str, cfg: PeriodConfig) -> dict:
    """model kind -> (checkpoint, that period's windows) from each kind's period-model reference."""
    loaded = {}
    for kind in model_kinds():
        ckpt = refs[kind].load()
        loaded[kind] = (ckpt, period_window_data(ckpt, table, period, cfg))
    return loaded


def analyse_period(
    loaded: dict,
    shas: dict[str, str],
    period: ForecastPeriod,
    folder: Path,
    controls: Path,
    cfg: PeriodConfig,
    protocol: Protocol,
    version: str,
    log: Callable[[str], None],
) -> PeriodOutcome:
    """The period's attention evidence in `folder` (one `.npz` per model), its controls under `controls/<period>`
    (warm-started from the previous month's). `shas`: each model's checkpoint digest; `version`: the analysis
    code's version and protocol, both in the evidence's fingerprint."""
    windows = len(loaded["attention_lstm"][1].test)
    if windows < MIN_PERIOD_WINDOWS:
        for stale in folder.glob("*.npz") if folder.exists() else []:
            stale.unlink()
        log(f"{period}: {windows} logged hours (< {MIN_PERIOD_WINDOWS}): not analysed yet")
        return PeriodOutcome(windows, analysed=False)
    fingerprints = {kind: evidence_fingerprint(version, shas[kind], data) for kind, (_, data) in loaded.items()}
    if all(stored_fingerprint(folder / f"{kind}.npz") == fp for kind, fp in fingerprints.items()):
        # the same code read the same checkpoints on the same hours: a rerun (a resumed backfill, a re-executed
        # job) reuses the stored evidence instead of redoing minutes of analysis
        log(f"{period}: every model's evidence is current ({windows} hours): reused")
        return PeriodOutcome(windows, analysed=True, reused=True)
    store = ControlStore(
        controls / period.key / "controls",
        previous=controls / period.previous().key / "controls",
        warm_epochs=cfg.warm_epochs,
        warm_patience=cfg.warm_patience,
    )
    before = set(store.trained())
    stored = {
        kind: appendable(folder / f"{kind}.npz", version, shas[kind], data, protocol)
        for kind, (_, data) in loaded.items()
    }
    grew = all(ev is not None for ev in stored.values())
    with place_training("cpu", log=log):  # a training slot and its share of the cores, as a training
        if grew:
            evidence = {
                name: appended(ckpt, data, stored[name], protocol, store, closed=windows >= period.hours)  # type: ignore[arg-type]
                for name, (ckpt, data) in loaded.items()
            }
            results = pool_all({name: [ev] for name, ev in evidence.items()}, log, resamples=protocol.resamples)
            for name, ev in evidence.items():
                ev.reading = reading_of(str(period), loaded[name][0].path.name, results[name], ev.end_ts)
        else:
            evidence, results = _full(loaded, str(period), store, protocol, log)
    for name, ev in evidence.items():
        save_evidence(folder / f"{name}.npz", replace(ev, fingerprint=fingerprints[name]))
    trained = set(store.trained()) - before
    old = len(next(iter(stored.values())).end_ts) if grew else windows  # type: ignore[union-attr]
    log(
        f"{period}: {'appended ' + str(windows - old) + ' new hours' if grew else 'analysed in full'} ({windows} hours)"
    )
    return PeriodOutcome(
        windows,
        analysed=True,
        appended=windows - old,
        nulls_redrawn=all(ev.deletion.nulls_current for ev in evidence.values() if ev.deletion is not None),
        controls_trained=len(trained),
        controls_reused=len(store.trained()) - len(trained),
        verdicts=[{"model": m, **{k: str(v) for k, v in an.verdict.to_dict().items()}} for m, an in results.items()],
    )


def _full(loaded: dict, period: str, store: ControlStore, protocol: Protocol, log) -> tuple[dict, dict]:
    """The month analysed in full: each model's evidence (its nulls dated today) and analysis."""
    tensors = {name: model_tensors(ckpt, data) for name, (ckpt, data) in loaded.items()}
    analysed = analyse_all(loaded, tensors, log=log, store=store, protocol=protocol)
    evidence = {}
    for name, an in analysed.items():
        ckpt, data = loaded[name]
        arch = ckpt.arch[0] if isinstance(ckpt.arch, list) else ckpt.arch
        ev = evidence_of(period, ckpt.path.name, an, tensors[name], arch.kwargs.get("scales"))
        if ev.deletion is not None:
            ev.deletion = _dated(ev.deletion, data)
        evidence[name] = ev
    return evidence, {name: an.analysis for name, an in analysed.items()}


def _dated(d: sanity.DeletionEvidence, data: WindowData) -> sanity.DeletionEvidence:
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    return replace(d, nulls_computed_on=today, nulls_through=_hour(data.test.end_ts[-1]))


def _hour(ts) -> str:
    return str(np.datetime64(ts, "h")).replace("T", " ") + ":00 UTC"


def rows(split: Split, lo: int, hi: int | None = None) -> Split:
    """Windows [lo, hi) of a split."""
    s = slice(lo, hi)
    return Split(split.x[s], split.ret[s], split.vol[s], split.direction[s], split.end_ts[s], split.raw_ret[s])


def appendable(path: Path, version: str, sha: str, data: WindowData, protocol: Protocol) -> PeriodEvidence | None:
    """The stored evidence when the month only grew since it was made: fewer windows than now, made by the same
    code, checkpoint and protocol from the same inputs of those earlier windows (their fingerprint), with the same
    deletion stride; else None (the month is recomputed in full)."""
    if not path.exists():
        return None
    try:
        ev = load_evidence(path)
    except StoredFileError:  # unreadable: recomputed in full
        return None
    old, new = len(ev.end_ts), len(data.test)
    stride = math.ceil(old / protocol.deletion_windows) == math.ceil(new / protocol.deletion_windows)
    if not (0 < old < new and stride and ev.fingerprint and ev.deletion is not None):
        return None
    head = replace(data, test=rows(data.test, 0, old))
    return ev if evidence_fingerprint(version, sha, head) == ev.fingerprint else None


def nulls_due(d: sanity.DeletionEvidence, newest, closed: bool) -> bool:
    """Whether the month's deletion nulls are redrawn: when it closes, or `NULLS_EVERY_DAYS` days after the newest
    hour they cover (data time, so that a backfill and a daily schedule agree), or when their hour is unknown."""
    if closed or not d.nulls_through:
        return True
    through = np.datetime64(d.nulls_through.removesuffix(" UTC").replace(" ", "T"), "h")
    return bool(np.datetime64(newest, "h") - through >= np.timedelta64(24 * NULLS_EVERY_DAYS, "h"))


def appended(
    ckpt, data: WindowData, old: PeriodEvidence, protocol: Protocol, store: ControlStore, closed: bool
) -> PeriodEvidence:
    """`old` (the month's evidence on its first windows) with the new windows' own evidence appended; the deletion
    nulls redrawn over every window when `nulls_due`, else kept (module docstring)."""
    n_old, n = len(old.end_ts), len(data.test)
    new = replace(data, test=rows(data.test, n_old))
    tensors = model_tensors(ckpt, new)
    both = {k: np.concatenate([v, tensors[k]]) for k, v in old.tensors.items()}
    outputs, _ = control_outputs(ckpt, new, store=store) if old.controls else ({}, None)
    controls = {
        c: {k: np.concatenate([v, outputs[c][k]]) for k, v in o.items() if k in outputs.get(c, {})}
        for c, o in old.controls.items()
    }
    output, x = old.output, data.test.x
    ablation = None
    if old.ablation is not None:
        losses = sanity.ablation_losses(ckpt.model, new.test.x, new.test.ret, output=output)
        assert losses is not None
        ablation = (np.concatenate([old.ablation[0], losses[0]]), np.concatenate([old.ablation[1], losses[1]]))
    d = old.deletion
    assert d is not None
    every = math.ceil(n / protocol.deletion_windows)
    picked = np.arange(n_old, n)[np.arange(n_old, n) % every == 0]  # the full run's windows x[::every] past n_old
    with sanity._on_device(ckpt.model, "auto"):  # a GPU where there is one, as `sanity.deletion_evidence`
        attention = both["attention"]
        top, recent, size = sanity.deletion_changes(ckpt.model, x[picked], attention[picked], d.k, output=output)
        d = replace(d, top=np.concatenate([d.top, top]), recent=np.concatenate([d.recent, recent]))
        d = replace(d, size=np.concatenate([d.size, size]), null_windows=d.covered)
        if nulls_due(d, data.test.end_ts[-1], closed):
            sums = sanity.deletion_nulls(
                ckpt.model,
                x[::every],
                both["attention"][::every],
                sanity.NullDraws(d.k, protocol.deletion_draws, protocol.random_draws),
                output=output,
            )
            d = replace(d, matched_sums=sums[0], overlap_sums=sums[1], random_sums=sums[2])
            d = _dated(replace(d, null_windows=len(d.top)), data)
    attribution = old.attribution
    if attribution is not None and len(attribution[0]) < IG_WINDOWS:  # the first IG_WINDOWS windows: not all there yet
        attribution = sanity.attribution_evidence(
            ckpt.model, x, both["attention"], max_windows=IG_WINDOWS, output=output
        )
    size_24h = old.size_24h
    if size_24h is not None:
        lr = list(data.spec.features).index("log_return")
        size_24h = np.concatenate([size_24h, np.abs(new.test.x[:, -SEASONAL_LAG, lr])])
    return replace(
        old,
        tensors=both,
        controls=controls,
        end_ts=np.concatenate([old.end_ts, np.asarray(new.test.end_ts).astype("datetime64[s]")]),
        trailing_vol=np.concatenate([old.trailing_vol, trailing_volatility(new)]),
        ablation=ablation,
        deletion=d,
        attribution=attribution,
        size_24h=size_24h,
    )


def model_tensors(ckpt, data) -> dict:
    """A model's attention tensors on its test windows."""
    p = predictions(ckpt, data)
    return {
        "attention": p.attention,
        "attention_maps": p.attention_maps,
        "member_attention": p.member_attention,
        "scale_attention": p.outputs.get("scale_attention"),
    }


def pooled_attention_files(
    symbol: str, pooled: dict[str, list[Path]], folder: Path
) -> tuple[dict[str, str], list[dict]]:
    """The forecast periods' evidence of each model (oldest first), its attention tensors concatenated into one
    file per model under `folder`: model -> file, and one `attention_summary` row per model."""
    files, rows = {}, []
    for name, paths in pooled.items():
        parts = [load_evidence(p) for p in paths]
        end_ts = np.concatenate([e.end_ts for e in parts])

        def cat(key: str, parts=parts) -> np.ndarray | None:
            arrays = [e.tensors.get(key) for e in parts]
            return None if any(a is None for a in arrays) else np.concatenate(arrays)  # type: ignore[arg-type]

        attention = cat("attention")
        assert attention is not None
        first, last = parts[0].reading.period, parts[-1].reading.period
        path = save_attention(
            folder / f"{name}-periods-{first}-{last}.npz",
            end_ts,
            attention,
            cat("attention_maps"),
            cat("member_attention"),
            cat("scale_attention"),
        )
        files[name] = str(path)
        rows.append(summary_row(symbol, name, path, end_ts, attention))
    return files, rows


def model_attention_files(symbol: str, loaded: dict, folder: Path) -> tuple[dict[str, str], list[dict]]:
    """The model assets' attention on their own test split, one file per model and checkpoint under `folder`."""
    files, rows = {}, []
    for name, (ckpt, data) in loaded.items():
        p = predictions(ckpt, data)
        path = save_attention(
            folder / f"{name}-{ckpt.sha256[:12]}.npz",
            data.test.end_ts,
            p.attention,
            p.attention_maps,
            p.member_attention,
            p.outputs.get("scale_attention"),
        )
        files[name] = str(path)
        rows.append(summary_row(symbol, name, path, data.test.end_ts, p.attention))
    return files, rows
