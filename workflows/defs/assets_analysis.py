"""Evaluation and the report, per symbol."""

from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from workflows.attention.extract import load_attention
from workflows.data.warehouse import replace_table_slice
from workflows.defs.assets_data import OWNERS
from workflows.defs.inputs import ANALYSIS_CODE_VERSION, MODEL_INS, HistoryConfig, load_inputs
from workflows.defs.partitions import EAGER_AFTER_CHECKS, EVERY_PERIOD_OF_SYMBOL, partition_symbol, symbols_partitions
from workflows.defs.resources import WarehouseResource
from workflows.evaluation.evidence import Evaluation
from workflows.evaluation.forecast_log import pooled_evaluation
from workflows.io import write_json_atomic, write_text_atomic
from workflows.reporting import figures
from workflows.reporting.calibration_figures import coverage_figure, reliability_figure
from workflows.reporting.evidence_figures import fold_skill_figure
from workflows.reporting.markdown import frame_to_markdown
from workflows.reporting.preview import ui_markdown
from workflows.reporting.report import (
    VOLATILITY_FIGURE,
    ReportInputs,
    attention_source,
    bottom_line,
    order,
    period_attention_source,
    write_report,
)
from workflows.reporting.volatility_figures import volatility_figure


class EvaluationConfig(dg.Config):
    periods: int = Field(
        default=0, description="Pool the newest N forecast periods stored in the forecast log (0: every one)"
    )


@dg.asset(
    partitions_def=symbols_partitions,
    ins=MODEL_INS,
    deps=[dg.AssetDep("forecasts", partition_mapping=EVERY_PERIOD_OF_SYMBOL)],
    pool="gpu",
    group_name="analysis",
    kinds={"pytorch", "duckdb"},
    owners=OWNERS,
    code_version=ANALYSIS_CODE_VERSION,
    automation_condition=EAGER_AFTER_CHECKS,
    description="Every model, trained control and baseline on the same hours, in one Holm-corrected family of "
    "Diebold-Mariano tests: the forecast log pooled over its monthly periods (trains nothing).",
)
def evaluation(
    context: dg.AssetExecutionContext, config: EvaluationConfig, warehouse: WarehouseResource, **models
) -> Evaluation:
    symbol = partition_symbol(context)
    profile = models["attention_lstm_model"].get("profile")
    with warehouse.connect() as con:
        ev = pooled_evaluation(con, symbol, config.periods or None, profile)
    if ev is None:  # the model assets read a stored period, so the log holds one unless it was deleted since
        raise dg.Failure(
            f"no forecast period of {symbol} is in the forecast log: backfill the periods (`workflows run`)"
        )
    stamp = datetime.now(timezone.utc).replace(tzinfo=None)
    rows = pl.DataFrame(
        [{"symbol": symbol, "model": m, "metric": k, "value": float(v), "evaluated_at": stamp} for m, k, v in ev.rows()]
    )
    with warehouse.connect() as con:
        replace_table_slice(con, "evaluation", symbol, rows)
    out_dir = warehouse.paths().reports / symbol
    write_json_atomic(out_dir / "evaluation.json", ev.to_dict())
    context.log.info(bottom_line(ev).replace("**", ""))
    survivors = pl.DataFrame(
        [
            {
                "comparison": f"{c.model} vs {c.baseline}",
                "loss": c.loss,
                "skill": c.skill,
                "p": c.dm.p_better,
                "p_holm": c.p_holm,
            }
            for c in ev.family
        ]
    ).sort("p_holm")
    context.add_output_metadata(
        {
            "evidence": ev.mode,
            "test_hours": ev.hours,
            "note": ev.note,
            "surviving_comparisons": len(ev.survivors()),
            "family": dg.MetadataValue.md(frame_to_markdown(survivors)),
        }
    )
    return ev


@dg.asset(
    partitions_def=symbols_partitions,
    ins={
        "evaluation": dg.AssetIn(),
        "attention_analysis": dg.AssetIn(),
        "attention_tensors": dg.AssetIn(),
        **MODEL_INS,
    },
    group_name="analysis",
    kinds={"markdown"},
    owners=OWNERS,
    code_version=ANALYSIS_CODE_VERSION,
    automation_condition=EAGER_AFTER_CHECKS,
    description="attention_report.md and its figures under reports/<symbol>/, shown here with the images.",
)
def report(
    context: dg.AssetExecutionContext,
    config: HistoryConfig,
    warehouse: WarehouseResource,
    evaluation: Evaluation,
    attention_analysis: dict,
    attention_tensors: dict,
    **models,
) -> dg.MaterializeResult:
    symbol = partition_symbol(context)
    _, sources, loaded = load_inputs(warehouse, symbol, models, config.history_days)
    out_dir = warehouse.paths().reports / symbol
    out_dir.mkdir(parents=True, exist_ok=True)
    figs = {}
    fold_skill_figure(evaluation, order(evaluation.returns), out_dir / "forecast_skill.png")
    figs["skill against the zero-return forecast per fold and pooled, with 95% intervals"] = "forecast_skill.png"
    if coverage_figure(evaluation, order(evaluation.returns), out_dir / "interval_coverage.png"):
        figs["interval coverage, nominal against observed, before and after calibration"] = "interval_coverage.png"
    if reliability_figure(evaluation, order(evaluation.probabilities), out_dir / "direction_reliability.png"):
        figs["reliability of the direction probabilities"] = "direction_reliability.png"
    figs.update(_attention_figures(symbol, out_dir, attention_analysis, attention_tensors))
    ckpt_learning = loaded["attention_lstm"][0]
    figures.training_figure(
        {m: c.training.history for m, (c, _) in loaded.items()},
        ckpt_learning.snapshots,
        "attention_lstm",
        out_dir / "training.png",
    )
    figs["training curves and attention snapshots"] = "training.png"

    synthetic = any(s.startswith("synthetic") for s in sources)
    note = (
        "SYNTHETIC data: generated candles with a planted dependency, not a market."
        if synthetic
        else f"Data sources: {', '.join(sources)}."
    )
    text = write_report(
        ReportInputs(
            symbol=symbol,
            data_note=note,
            evaluation=evaluation,
            analyses=attention_analysis,
            figures=figs,
            profile=models["attention_lstm_model"].get("profile", "?"),
            training={m: c.training for m, (c, _) in loaded.items()},
            attention_source=period_attention_source(attention_analysis)
            or attention_source(
                {m: (models[f"{m}_model"].get("period"), c.path.name) for m, (c, _) in loaded.items()},
                loaded["attention_lstm"][1].test.end_ts,
            ),
        )
    )
    path = write_text_atomic(out_dir / "attention_report.md", text)
    # The figures stay files: the event log gets their paths and one small thumbnail.
    ui_text = ui_markdown(text, out_dir, preview="attention_analysis.png")
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.md(ui_text),
            "path": dg.MetadataValue.path(str(path)),
            "folder": dg.MetadataValue.path(str(out_dir)),
            "evidence": evaluation.mode,
            "figures": ", ".join(figs.values()),
        }
    )


def _attention_figures(symbol: str, out_dir: Path, analyses: dict, tensor_files: dict) -> dict[str, str]:
    tensors = {m: load_attention(p) for m, p in tensor_files.items()}
    figs = {}
    for model, file in (
        ("attention_lstm", "attention_analysis.png"),
        ("reference_lstm", "attention_analysis_reference_lstm.png"),
        ("volatility", "attention_analysis_volatility.png"),
    ):
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
