"""Attention tensors on disk: one `.npz` per model and symbol, written atomically,
read with `allow_pickle=False` (no code can hide in them)."""

from pathlib import Path

import numpy as np
import polars as pl

from workflows.attention import metrics as am
from workflows.io import reading_stored, write_with


def save_attention(
    path: Path,
    end_ts: np.ndarray,
    attention: np.ndarray,
    maps: np.ndarray | None = None,
    member_attention: np.ndarray | None = None,
    scale_attention: np.ndarray | None = None,
) -> Path:
    """Window end times (UTC, seconds), (N, T) weights, and optional tensors: Transformer maps (N, L, H, T)
    as `attention_maps`, ensemble members (N, M, T) as `member_attention`, multi-scale pools (N, S, T) as
    `scale_attention` (zero weight outside each pool's most recent hours)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "end_ts": end_ts.astype("datetime64[s]").astype(np.int64),
        "hours_ago": am.hours_ago(attention.shape[1]),
        "attention": attention.astype(np.float32),
    }
    if maps is not None:
        arrays["attention_maps"] = maps.astype(np.float32)
    if member_attention is not None:
        arrays["member_attention"] = member_attention.astype(np.float32)
    if scale_attention is not None:
        arrays["scale_attention"] = scale_attention.astype(np.float32)
    return write_with(path, lambda tmp: np.savez_compressed(tmp, **arrays))


def load_attention(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    remedy = f"delete it and rematerialise attention_tensors for {path.parent.name} (it is recomputed)"
    with reading_stored(path, "the attention tensors", remedy), np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def summary_row(symbol: str, model: str, path: Path, end_ts: np.ndarray, attention: np.ndarray) -> dict:
    s = am.summarise(attention)
    ts = pl.Series(end_ts.astype("datetime64[us]"))
    return {
        "symbol": symbol,
        "model": model,
        "windows": int(attention.shape[0]),
        "first_window": ts.min(),
        "last_window": ts.max(),
        "file": str(path),
        "normalised_entropy_median": s.normalised_entropy.median,
        "max_weight_median": s.max_weight.median,
        "top_hour": s.top_hours[0],
        "profile_max_lift": s.profile_max_lift,
    }
