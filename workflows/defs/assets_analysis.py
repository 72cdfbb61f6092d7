"""Evaluation and the report, per symbol."""

import base64
from datetime import datetime, timezone

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from workflows.attention.extract import load_attention
from workflows.defs.assets_data import OWNERS
from workflows.defs.inputs import ANALYSIS_CODE_VERSION, MODEL_INS, load_inputs
from workflows.defs.partitions import EAGER_AFTER_CHECKS, symbols_partitions
from workflows.defs.resources import WarehouseResource
from workflows.evaluation.run import evaluate, predictions
from workflows.evaluation.walk_forward import enough_history, history_days, walk_forward
from workflows.ml.profiles import recipe_for
from workflows.reporting import figures
from workflows.reporting.markdown import frame_to_markdown
from workflows.reporting.report import forecast_sentence, write_report
from workflows.warehouse import replace_table_slice

EVALUATION_DDL = (
    "CREATE TABLE IF NOT EXISTS evaluation (symbol VARCHAR NOT NULL, model VARCHAR NOT NULL, "
    "metric VARCHAR NOT NULL, value DOUBLE, evaluated_at TIMESTAMP NOT NULL)"
)

def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else k, v, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out[prefix] = float(value)


class EvaluationConfig(dg.Config):
    walk_forward_folds: int = Field(default=6, description="Rolling-origin folds when history allows (0 = off)")
    walk_forward_fold_days: int = Field(default=30, description="Days tested per fold")
    walk_forward_train_days: int = Field(default=365, description="Most days of history each fold trains on")
    walk_forward_models: list[str] = Field(default=["reference_lstm", "attention_lstm"])


@dg.asset(
    partitions_def=symbols_partitions, ins=MODEL_INS, pool="duckdb", group_name="analysis", kinds={"duckdb"},
    owners=OWNERS, code_version=ANALYSIS_CODE_VERSION, automation_condition=EAGER_AFTER_CHECKS,
    description="Test-split forecast metrics per model against the zero and mean forecasts, with DM/PT tests; "
                "rolling-origin over long histories.",
)
def evaluation(context: dg.AssetExecutionContext, config: EvaluationConfig, warehouse: WarehouseResource,
               **models) -> dict:
    symbol = context.partition_key
    table, _, loaded = load_inputs(warehouse, symbol, models)
    results, rows = {}, []
    stamp = datetime.now(timezone.utc).replace(tzinfo=None)
    wf_on = enough_history(table, config.walk_forward_folds, config.walk_forward_fold_days,
                           config.walk_forward_train_days)
    if not wf_on:
        context.log.info(f"rolling-origin evaluation skipped: {history_days(table):.0f} days of history are fewer "
                         f"than {config.walk_forward_train_days} + {config.walk_forward_folds} x "
                         f"{config.walk_forward_fold_days} + 14")
    for name, (ckpt, data) in loaded.items():
        results[name] = evaluate(ckpt, data, table, predictions(ckpt, data))
        if wf_on and name in config.walk_forward_models:
            recipe = recipe_for(name, models[f"{name}_model"].get("profile"))
            results[name]["walk_forward"] = walk_forward(
                table, recipe, config.walk_forward_folds, config.walk_forward_fold_days,
                config.walk_forward_train_days,
                progress=lambda i, n, row, m=name: context.log.info(f"{m} walk-forward fold {i}/{n}: {row}"))
        flat: dict = {}
        _flatten("", results[name], flat)
        rows += [{"symbol": symbol, "model": name, "metric": k, "value": v, "evaluated_at": stamp} for k, v in flat.items()]
        context.log.info(forecast_sentence(name, results[name]))
    with warehouse.connect() as con:
        replace_table_slice(con, "evaluation", symbol, pl.DataFrame(rows), EVALUATION_DDL)
    summary = pl.DataFrame([
        {"model": m, "rmse_pct": r["returns"]["rmse_pct"], "zero_rmse_pct": r["returns"]["rmse_zero_pct"],
         "skill_vs_zero": r["returns"]["skill_vs_zero"], "dm_p": r["returns"]["dm_vs_zero_p"],
         "direction": r["returns"]["direction_accuracy"], "n": r["returns"]["n"]}
        for m, r in results.items()
    ])
    context.add_output_metadata({"summary": dg.MetadataValue.md(frame_to_markdown(summary)),
                                 "test_hours": int(summary["n"].max())})
    return results


@dg.asset(
    partitions_def=symbols_partitions,
    ins={"evaluation": dg.AssetIn(), "attention_analysis": dg.AssetIn(), "attention_tensors": dg.AssetIn(), **MODEL_INS},
    group_name="analysis", kinds={"markdown"}, owners=OWNERS, code_version=ANALYSIS_CODE_VERSION,
    automation_condition=EAGER_AFTER_CHECKS,
    description="attention_report.md and its figures under reports/<symbol>/, shown here with the images.",
)
def report(context: dg.AssetExecutionContext, warehouse: WarehouseResource, evaluation: dict,
           attention_analysis: dict, attention_tensors: dict, **models) -> dg.MaterializeResult:
    symbol = context.partition_key
    _, sources, loaded = load_inputs(warehouse, symbol, models)
    out_dir = warehouse.paths().reports / symbol
    tensors = {m: load_attention(p) for m, p in attention_tensors.items()}
    figs = {}
    for model, file in (("attention_lstm", "attention_analysis.png"), ("reference_lstm", "attention_analysis_reference_lstm.png")):
        an = attention_analysis[model]
        figures.attention_analysis_figure(tensors[model]["attention"], an["summary"], f"{symbol}: {model}",
                                          out_dir / file, an["controls"])
        figs[f"{model}: the seven panels"] = file
    profiles = {m: np.asarray(a["summary"]["mean_profile"]) for m, a in attention_analysis.items()}
    for ctrl, s in attention_analysis["attention_lstm"]["controls"].items():
        profiles[f"attention_lstm control: {ctrl}"] = np.asarray(s["mean_profile"])
    figures.comparison_figure(profiles, out_dir / "attention_comparison.png")
    figs["mean attention of every model and the controls"] = "attention_comparison.png"
    if "attention_maps" in tensors.get("transformer", {}):
        figures.transformer_heads_figure(tensors["transformer"]["attention_maps"], out_dir / "transformer_heads.png",
                                         f"{symbol}: Transformer, last query, per layer and head")
        figs["Transformer heads"] = "transformer_heads.png"
    ckpt_learning = loaded["attention_lstm"][0]
    figures.training_figure({m: c.metrics.get("history", []) for m, (c, _) in loaded.items()},
                            ckpt_learning.snapshots, "attention_lstm", out_dir / "training.png")
    figs["training curves and attention snapshots"] = "training.png"

    synthetic = any(s.startswith("synthetic") for s in sources)
    note = ("SYNTHETIC data: generated candles with a planted dependency, not a market." if synthetic else
            f"Data sources: {', '.join(sources)}.")
    data = loaded["attention_lstm"][1]
    context_info = {
        "profile": models["attention_lstm_model"].get("profile", "?"),
        "test_windows": len(data.test),
        "test_start": str(data.test.end_ts.min())[:16], "test_end": str(data.test.end_ts.max())[:16],
        "training": {m: c.metrics for m, (c, _) in loaded.items()},
    }
    text = write_report(symbol, note, evaluation, attention_analysis, figs, context_info)
    path = out_dir / "attention_report.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    ui_text = text
    for name in figs.values():  # the UI shows the images inline
        encoded = base64.b64encode((out_dir / name).read_bytes()).decode()
        ui_text = ui_text.replace(f"]({name})", f"](data:image/png;base64,{encoded})")
    return dg.MaterializeResult(metadata={
        "report": dg.MetadataValue.md(ui_text),
        "path": dg.MetadataValue.path(str(path)),
        "figures": ", ".join(figs.values()),
    })
