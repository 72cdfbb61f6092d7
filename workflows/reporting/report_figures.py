"""The report's figures, drawn into the symbol's report folder: the skill per monthly period and pooled, the
interval coverage, the direction probabilities' reliability, each analysed attention model's panels, the
volatility model's attention, the training curves. `report_figures` returns caption -> file name, in the
report's order."""

from pathlib import Path

import numpy as np

from workflows.attention.extract import load_attention
from workflows.evaluation.evidence import Evaluation
from workflows.ml.checkpoints import Checkpoint
from workflows.reporting import figures
from workflows.reporting.calibration_figures import coverage_figure, reliability_figure
from workflows.reporting.evidence_figures import fold_skill_figure
from workflows.reporting.report import VOLATILITY_FIGURE, order
from workflows.reporting.volatility_figures import volatility_figure

ATTENTION_FIGURES = (
    ("attention_lstm", "attention_analysis.png"),
    ("reference_lstm", "attention_analysis_reference_lstm.png"),
    ("volatility", "attention_analysis_volatility.png"),
)


def report_figures(
    symbol: str,
    out_dir: Path,
    evaluation: Evaluation,
    analyses: dict,
    tensor_files: dict,
    checkpoints: dict[str, Checkpoint],
) -> dict[str, str]:
    """Draw every figure of the report into `out_dir` (created if missing)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figs = {}
    fold_skill_figure(evaluation, order(evaluation.returns), out_dir / "forecast_skill.png")
    figs["skill against the zero-return forecast per monthly period and pooled, with 95% intervals"] = (
        "forecast_skill.png"
    )
    if coverage_figure(evaluation, order(evaluation.returns), out_dir / "interval_coverage.png"):
        figs["interval coverage, nominal against observed, before and after calibration"] = "interval_coverage.png"
    if reliability_figure(evaluation, order(evaluation.probabilities), out_dir / "direction_reliability.png"):
        figs["reliability of the direction probabilities"] = "direction_reliability.png"
    figs.update(attention_figures(symbol, out_dir, analyses, tensor_files))
    figures.training_figure(
        {m: c.training.history for m, c in checkpoints.items()},
        checkpoints["attention_lstm"].snapshots,
        "attention_lstm",
        out_dir / "training.png",
    )
    figs["training curves and attention snapshots"] = "training.png"
    return figs


def attention_figures(symbol: str, out_dir: Path, analyses: dict, tensor_files: dict) -> dict[str, str]:
    """Each analysed attention model's seven panels, the mean profiles against the controls', and the volatility
    model's attention against the autocorrelation of absolute returns."""
    tensors = {m: load_attention(p) for m, p in tensor_files.items()}
    figs = {}
    for model, file in ATTENTION_FIGURES:
        if model not in analyses:
            continue
        an = analyses[model]
        figures.attention_analysis_figure(
            tensors[model]["attention"], an.summary, f"{symbol}: {model}", out_dir / file, an.controls
        )
        figs[f"{model}: the seven panels"] = file
    profiles = {m: np.asarray(a.summary.mean_profile) for m, a in analyses.items()}
    for ctrl, s in analyses["attention_lstm"].controls.items():
        profiles[f"attention_lstm control: {ctrl}"] = np.asarray(s.mean_profile)
    vol = analyses.get("volatility")
    if vol is not None and vol.volatility is not None:
        volatility_figure(vol.volatility, out_dir / VOLATILITY_FIGURE, f"{symbol}: the volatility attention model")
        figs["volatility model: attention against the autocorrelation of absolute returns"] = VOLATILITY_FIGURE
    figures.comparison_figure(profiles, out_dir / "attention_comparison.png")
    figs["mean attention of every model and the controls"] = "attention_comparison.png"
    if "attention_maps" in tensors.get("transformer", {}):
        figures.transformer_heads_figure(
            tensors["transformer"]["attention_maps"],
            out_dir / "transformer_heads.png",
            f"{symbol}: Transformer, last query, per layer and head",
        )
        figs["Transformer heads"] = "transformer_heads.png"
    return figs
