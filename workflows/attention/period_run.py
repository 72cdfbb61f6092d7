"""One forecast period's attention analysis on disk, and the attention tensors of a symbol: the work behind the
`period_attention` and `attention_tensors` assets (`workflows.defs.assets_attention` keeps only the Dagster glue).

A period's analysis (`analyse_period`) reads that month's period models on that month's logged hours, with its
shuffled-target controls kept per month and architecture (`sanity.ControlStore`), and stores one evidence file
per model (`periods.save_evidence`). Its evidence is fingerprinted on what made it (`periods.evidence_fingerprint`):
the same code, checkpoints and hours reuse it untouched.
"""

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import polars as pl

from workflows.attention.analysis import Protocol, analyse_all
from workflows.attention.extract import save_attention, summary_row
from workflows.attention.periods import (
    evidence_fingerprint,
    evidence_of,
    load_evidence,
    save_evidence,
    stored_fingerprint,
)
from workflows.attention.sanity import ControlStore
from workflows.evaluation.run import period_window_data, predictions
from workflows.ml.checkpoints import load_checkpoint
from workflows.ml.periods import ForecastPeriod, PeriodConfig
from workflows.ml.placement import place_training
from workflows.ml.profiles import model_kinds

# A period with fewer logged hours is not analysed (the block bootstrap's blocks are 48 windows long).
MIN_PERIOD_WINDOWS = 96


@dataclass
class PeriodOutcome:
    """What `analyse_period` did: the asset's metadata."""

    windows: int
    analysed: bool
    reused: bool = False
    controls_trained: int = 0
    controls_reused: int = 0
    verdicts: list[dict] = field(default_factory=list)  # one row per model: its verdict's fields as text


def load_period_models(table: pl.DataFrame, refs: dict[str, dict], period: str, cfg: PeriodConfig) -> dict:
    """model kind -> (checkpoint, that period's windows) from each kind's period-model reference (path, sha256)."""
    loaded = {}
    for kind in model_kinds():
        ckpt = load_checkpoint(refs[kind]["path"], refs[kind]["sha256"])
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
    tensors = {name: model_tensors(ckpt, data) for name, (ckpt, data) in loaded.items()}
    store = ControlStore(
        controls / period.key / "controls",
        previous=controls / period.previous().key / "controls",
        warm_epochs=cfg.warm_epochs,
        warm_patience=cfg.warm_patience,
    )
    before = set(store.trained())
    raw: dict[str, dict] = {}
    with place_training("cpu", log=log):  # a training slot and its share of the cores, as a training
        results = analyse_all(loaded, tensors, log=log, store=store, evidence=raw, protocol=protocol)
    for name, an in results.items():
        ckpt = loaded[name][0]
        arch = ckpt.arch[0] if isinstance(ckpt.arch, list) else ckpt.arch
        ev = evidence_of(str(period), ckpt.path.name, an, tensors[name], raw[name], arch.kwargs.get("scales"))
        save_evidence(folder / f"{name}.npz", replace(ev, fingerprint=fingerprints[name]))
    trained = set(store.trained()) - before
    return PeriodOutcome(
        windows,
        analysed=True,
        controls_trained=len(trained),
        controls_reused=len(store.trained()) - len(trained),
        verdicts=[{"model": m, **{k: str(v) for k, v in an.verdict.to_dict().items()}} for m, an in results.items()],
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
