"""Attention read from the forecast periods' models, pooled over periods.

Each forecast period (a month) has its own models, tested on its own hours (the
forecast log). A period's analysis (`analysis.analyse_all` on those models and
hours, its shuffled-target controls trained once per period and architecture and
kept on disk, `sanity.ControlStore`) is stored with its raw evidence:

* the attention tensors of the period's test windows and the controls' tensors;
* the uniform-ablation losses per window; the deletion test's per-window changes
  and per-draw sums (`sanity.DeletionEvidence`); the attribution correlations;
* for a volatility model, the inputs its hour-of-day reading partials out and the
  training returns its lag profile is read against.

The pooled analysis of a model concatenates the periods' evidence, so that each
window is read from the model that forecast it, and computes every figure exactly
as for one model: the block bootstrap runs over the concatenated windows (a block
may straddle two periods' boundary: a handful of blocks of 48 among hundreds), the
ablation's ratio interval over the pooled losses, the deletion's position-matched
null permutes windows within each period (each its own model) and adds the periods'
sums, draw by draw. The volatility model's lag profile is read against the newest
period's training returns (the most recent year of |r| autocorrelation). Beside the
pooled reading, each period's own reading (`analysis.PeriodReading`) is kept: the
per-period spread the report prints.
"""

import hashlib
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from workflows.attention import metrics as am
from workflows.attention import sanity
from workflows.attention.analysis import (
    Analysed,
    AttentionAnalysis,
    PeriodReading,
    describe,
    regimes_of,
    verdict,
)
from workflows.attention.volatility import volatility_attention
from workflows.io import reading_stored, write_with

TENSORS = ("attention", "attention_maps", "member_attention", "scale_attention")
CONTROL_PREFIX = "control__"


@dataclass
class PeriodEvidence:
    """One model's analysis of one forecast period, with the raw evidence that pools."""

    reading: PeriodReading
    tensors: dict[str, np.ndarray]  # TENSORS the model has
    controls: dict[str, dict[str, np.ndarray]]  # control name -> its TENSORS
    end_ts: np.ndarray  # window ends, datetime64[s]
    trailing_vol: np.ndarray
    output: str = "ret"
    ablation: tuple[np.ndarray, np.ndarray] | None = None
    deletion: sanity.DeletionEvidence | None = None
    attribution: tuple[np.ndarray, np.ndarray] | None = None
    size_24h: np.ndarray | None = None
    train_end_ts: np.ndarray | None = None
    train_raw_ret: np.ndarray | None = None
    scales: list[int] | None = None
    control_key: str = ""  # `analysis.control_key`: equal keys are one recipe (seed aside)
    fingerprint: str = ""  # `evidence_fingerprint` of what made it ("" when unknown: never reused)


def reading_of(period: str, checkpoint: str, an: AttentionAnalysis, end_ts: np.ndarray) -> PeriodReading:
    hours = np.asarray(end_ts).astype("datetime64[h]")
    first, last = (str(hours.min()).replace("T", " ") + ":00", str(hours.max()).replace("T", " ") + ":00")
    v = an.verdict
    return PeriodReading(
        period=period,
        checkpoint=checkpoint,
        windows=len(hours),
        first_hour=first,
        last_hour=last,
        peak_hour=v.peak_hour,
        peak_lift=v.peak_lift,
        peak_lift_ci=v.peak_lift_ci,
        concentrated=v.concentrated,
        relied_upon=v.relied_upon,
        faithful=v.faithful,
    )


def evidence_of(
    period: str, checkpoint: str, analysed: Analysed, tensors: dict, scales: list[int] | None = None
) -> PeriodEvidence:
    """From `analyse`'s result and the model's tensors."""
    an, raw = analysed.analysis, analysed.evidence
    end_ts = np.asarray(raw.end_ts).astype("datetime64[s]")
    return PeriodEvidence(
        reading=reading_of(period, checkpoint, an, end_ts),
        tensors={k: np.asarray(tensors[k]) for k in TENSORS if tensors.get(k) is not None},
        controls={c: {k: np.asarray(v) for k, v in o.items()} for c, o in raw.controls.items()},
        end_ts=end_ts,
        trailing_vol=np.asarray(raw.trailing_vol),
        output=raw.output,
        ablation=raw.ablation,
        deletion=raw.deletion,
        attribution=raw.attribution,
        size_24h=raw.size_24h,
        train_end_ts=raw.train_end_ts,
        train_raw_ret=raw.train_raw_ret,
        scales=scales,
        control_key=an.control_setup.key.rsplit("-", 1)[0] if an.control_setup else "",
    )


def evidence_fingerprint(version: str, checkpoint_sha256: str, data) -> str:
    """What a period's evidence of one model depends on: the analysis code's version, the checkpoint (its bytes'
    digest: the training slice and its data version are in it) and the logged hours read (the test split's
    inputs, targets and hours, so a corrected candle inside the period changes it)."""
    h = hashlib.sha256(f"{version}|{checkpoint_sha256}|{data.data_version}".encode())
    t = data.test
    for a in (t.x, t.ret, t.vol, t.direction, t.raw_ret, np.asarray(t.end_ts).astype("datetime64[s]")):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def stored_fingerprint(path: Path) -> str:
    """The fingerprint a stored evidence file was made with ("" when absent, unreadable or older than fingerprints:
    such a file is never reused)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return str(f["fingerprint"]) if "fingerprint" in f.files else ""
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return ""


def save_evidence(path: Path, ev: PeriodEvidence) -> Path:
    """One `.npz` (no pickles): arrays under flat names, the reading's fields as 0-d or 1-d arrays."""
    r = ev.reading
    arrays: dict[str, np.ndarray] = {
        "end_ts": ev.end_ts.astype("datetime64[s]").astype(np.int64),
        "trailing_vol": ev.trailing_vol.astype(np.float64),
        "output": np.array(ev.output),
        "reading_text": np.array([r.period, r.checkpoint, r.first_hour, r.last_hour, ev.control_key]),
        "fingerprint": np.array(ev.fingerprint),
        "reading_numbers": np.array([r.windows, r.peak_hour, r.peak_lift, *r.peak_lift_ci], dtype=np.float64),
        "reading_flags": np.array(
            [{True: 1, False: 0, None: -1}[f] for f in (r.concentrated, r.relied_upon, r.faithful)], dtype=np.int8
        ),
    }
    for k, v in ev.tensors.items():
        arrays[k] = v.astype(np.float32)
    for c, outputs in ev.controls.items():
        for k, v in outputs.items():
            arrays[f"{CONTROL_PREFIX}{c}__{k}"] = np.asarray(v, dtype=np.float32)
    if ev.ablation is not None:
        arrays["ablation_attention"], arrays["ablation_uniform"] = ev.ablation
    if ev.deletion is not None:
        d = ev.deletion
        arrays |= {
            "deletion_k": np.array(d.k),
            "deletion_top": d.top,
            "deletion_recent": d.recent,
            "deletion_size": d.size,
            "deletion_matched_sums": d.matched_sums,
            "deletion_overlap_sums": d.overlap_sums,
            "deletion_random_sums": d.random_sums,
            "deletion_null_windows": np.array(d.covered),
            "deletion_nulls_text": np.array([d.nulls_computed_on, d.nulls_through]),
        }
    if ev.attribution is not None:
        arrays["attribution_rho"], arrays["attribution_importance"] = ev.attribution
    for name in ("size_24h", "train_raw_ret"):
        if getattr(ev, name) is not None:
            arrays[name] = np.asarray(getattr(ev, name), dtype=np.float64)
    if ev.train_end_ts is not None:
        arrays["train_end_ts"] = np.asarray(ev.train_end_ts).astype("datetime64[s]").astype(np.int64)
    if ev.scales is not None:
        arrays["scales"] = np.asarray(ev.scales, dtype=np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_with(path, lambda tmp: np.savez_compressed(tmp, allow_pickle=False, **arrays))


def load_evidence(path: str | Path) -> PeriodEvidence:
    path = Path(path)
    remedy = (
        f"delete it and rematerialise period_attention for {path.parent.parent.name}, period {path.parent.name} "
        "(a period whose evidence file is missing is recomputed)"
    )
    with reading_stored(path, "the period's attention evidence", remedy), np.load(path, allow_pickle=False) as f:
        a = {k: f[k] for k in f.files}
    with reading_stored(path, "the period's attention evidence", remedy):
        return _evidence_from(a)


def _evidence_from(a: dict[str, np.ndarray]) -> PeriodEvidence:
    text, numbers, flags = a["reading_text"], a["reading_numbers"], a["reading_flags"]
    flag = {1: True, 0: False, -1: None}
    reading = PeriodReading(
        period=str(text[0]),
        checkpoint=str(text[1]),
        windows=int(numbers[0]),
        first_hour=str(text[2]),
        last_hour=str(text[3]),
        peak_hour=int(numbers[1]),
        peak_lift=float(numbers[2]),
        peak_lift_ci=(float(numbers[3]), float(numbers[4])),
        concentrated=bool(flag[int(flags[0])]),
        relied_upon=flag[int(flags[1])],
        faithful=flag[int(flags[2])],
    )
    controls: dict[str, dict[str, np.ndarray]] = {}
    for key, value in a.items():
        if key.startswith(CONTROL_PREFIX):
            c, k = key[len(CONTROL_PREFIX) :].split("__", 1)
            controls.setdefault(c, {})[k] = value
    deletion = None
    if "deletion_top" in a:
        deletion = sanity.DeletionEvidence(
            k=int(a["deletion_k"]),
            top=a["deletion_top"],
            recent=a["deletion_recent"],
            size=a["deletion_size"],
            matched_sums=a["deletion_matched_sums"],
            overlap_sums=a["deletion_overlap_sums"],
            random_sums=a["deletion_random_sums"],
            null_windows=int(a["deletion_null_windows"]) if "deletion_null_windows" in a else None,
            nulls_computed_on=str(a["deletion_nulls_text"][0]) if "deletion_nulls_text" in a else "",
            nulls_through=str(a["deletion_nulls_text"][1]) if "deletion_nulls_text" in a else "",
        )
    return PeriodEvidence(
        reading=reading,
        tensors={k: a[k] for k in TENSORS if k in a},
        controls=controls,
        end_ts=a["end_ts"].astype("datetime64[s]"),
        trailing_vol=a["trailing_vol"],
        output=str(a["output"]),
        ablation=(a["ablation_attention"], a["ablation_uniform"]) if "ablation_attention" in a else None,
        deletion=deletion,
        attribution=(a["attribution_rho"], a["attribution_importance"]) if "attribution_rho" in a else None,
        size_24h=a.get("size_24h"),
        train_end_ts=a["train_end_ts"].astype("datetime64[s]") if "train_end_ts" in a else None,
        train_raw_ret=a.get("train_raw_ret"),
        scales=[int(s) for s in a["scales"]] if "scales" in a else None,
        control_key=str(text[4]),
        fingerprint=str(a["fingerprint"]) if "fingerprint" in a else "",
    )


def _cat(parts: list[np.ndarray | None]) -> np.ndarray | None:
    if any(p is None for p in parts) or not parts:
        return None
    shapes = {p.shape[1:] for p in parts if p is not None}
    if len(shapes) != 1:  # another window length or head count across periods: not poolable
        return None
    return np.concatenate([p for p in parts if p is not None])


def pool(
    parts: list[PeriodEvidence],
    seed_attention: np.ndarray | None = None,
    seed_source: str = "",
    resamples: int = am.DEFAULT_RESAMPLES,
    seed: int = 0,
) -> AttentionAnalysis:
    """One model's periods, oldest first, pooled (module docstring); `periods` holds each one's reading."""
    if not parts:
        raise ValueError("no forecast period to pool")
    attention = _cat([p.tensors["attention"] for p in parts])
    if attention is None:
        raise ValueError("the periods' attention tensors have different window lengths: they cannot be pooled")
    names = set.intersection(*(set(p.controls) for p in parts))
    controls = {}
    for c in sorted(names):
        keys = set.intersection(*(set(p.controls[c]) for p in parts))
        controls[c] = {k: v for k in keys if (v := _cat([p.controls[c][k] for p in parts])) is not None}
    member = _cat([p.tensors.get("member_attention") for p in parts])
    if seed_attention is None and member is not None:
        seed_attention = member
        seed_source = seed_source or f"its own {member.shape[1]} members, which differ only by seed"
    an = describe(
        attention,
        controls,
        attention_maps=_cat([p.tensors.get("attention_maps") for p in parts]),
        scale_attention=_cat([p.tensors.get("scale_attention") for p in parts]),
        scales=parts[-1].scales,
        seed_attention=seed_attention,
        seed_source=seed_source,
        regimes=regimes_of(np.concatenate([p.trailing_vol for p in parts]), attention),
        resamples=resamples,
        seed=seed,
    )
    output = parts[-1].output
    ablation = None
    if all(p.ablation is not None for p in parts):
        err_a = np.concatenate([p.ablation[0] for p in parts if p.ablation is not None])
        err_u = np.concatenate([p.ablation[1] for p in parts if p.ablation is not None])
        ablation = sanity.ablation_from_losses(err_a, err_u, output=output, seed=seed, resamples=resamples)
    deletion = None
    if all(p.deletion is not None for p in parts):
        pooled = sanity.DeletionEvidence.concat([p.deletion for p in parts if p.deletion is not None])
        deletion = sanity.deletion_from_evidence(pooled, resamples=resamples, seed=seed)
    attribution = None
    if all(p.attribution is not None for p in parts):
        rho = np.concatenate([p.attribution[0] for p in parts if p.attribution is not None])
        imp = _cat([p.attribution[1] for p in parts if p.attribution is not None])
        attribution = sanity.attribution_from_evidence((rho, imp)) if imp is not None else None
    vol = None
    newest = parts[-1]
    if output == "vol_next" and newest.train_end_ts is not None and newest.train_raw_ret is not None:
        sizes = [p.size_24h for p in parts]
        vol = volatility_attention(
            attention,
            {c: o["attention"] for c, o in controls.items()},
            np.concatenate([p.end_ts for p in parts]),
            newest.train_end_ts,
            newest.train_raw_ret,
            resamples=resamples,
            seed=seed,
            size_24h=None if any(s is None for s in sizes) else np.concatenate(sizes),  # type: ignore[arg-type]
        )
    return replace(
        an,
        output=output,
        volatility=vol,
        ablation=ablation,
        deletion=deletion,
        attribution=attribution,
        verdict=verdict(an.bootstrap, an.control_bootstrap, ablation, deletion),
        periods=[p.reading for p in parts],
    )


def pool_all(
    by_model: dict[str, list[PeriodEvidence]], log=None, resamples: int = am.DEFAULT_RESAMPLES
) -> dict[str, AttentionAnalysis]:
    """Every model's periods pooled; a single model whose recipe is the ensemble's gets the ensemble members'
    pooled seed spread when both cover the same windows (as `analysis.analyse_all` does for one period)."""
    say = log or (lambda _msg: None)
    out = {}
    ens = by_model.get("ensemble")
    members = _cat([p.tensors.get("member_attention") for p in ens]) if ens else None
    for name, parts in by_model.items():
        extra = {}
        same_recipe = (
            ens is not None
            and name != "ensemble"
            and [p.control_key for p in parts] == [p.control_key for p in ens]
            and [len(p.end_ts) for p in parts] == [len(p.end_ts) for p in ens]
        )
        if members is not None and same_recipe:
            extra = {
                "seed_attention": members,
                "seed_source": f"the ensemble's {members.shape[1]} members, which are this recipe with "
                f"{members.shape[1]} seeds",
            }
        out[name] = pool(parts, resamples=resamples, **extra)
        say(f"{name}: pooled over {len(parts)} period(s): {out[name].verdict.to_dict()}")
    return out
