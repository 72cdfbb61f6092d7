"""Attention tensors and the attention-pattern analysis, per symbol."""

import dagster as dg
import polars as pl

from workflows.attention.analysis import analyse_all
from workflows.attention.extract import ATTENTION_SUMMARY_DDL, load_attention, save_attention, summary_row
from workflows.data.retention import prune_versions
from workflows.data.warehouse import replace_table_slice
from workflows.defs.assets_data import OWNERS
from workflows.defs.inputs import ANALYSIS_CODE_VERSION, MODEL_INS, HistoryConfig, load_inputs
from workflows.defs.partitions import EAGER_AFTER_CHECKS, partition_symbol, symbols_partitions
from workflows.defs.resources import WarehouseResource
from workflows.evaluation.run import predictions
from workflows.io import write_json_atomic
from workflows.reporting.markdown import frame_to_markdown

ATTENTION_METRICS_DDL = (
    "CREATE TABLE IF NOT EXISTS attention_metrics (symbol VARCHAR NOT NULL, model VARCHAR NOT NULL, "
    "metric VARCHAR NOT NULL, median DOUBLE, p25 DOUBLE, p75 DOUBLE)"
)


@dg.asset(
    partitions_def=symbols_partitions,
    ins=MODEL_INS,
    pool="duckdb",
    group_name="analysis",
    kinds={"numpy", "duckdb"},
    owners=OWNERS,
    code_version=ANALYSIS_CODE_VERSION,
    automation_condition=EAGER_AFTER_CHECKS,
    description="Attention weights of every test window per model (files under attention/), summary in DuckDB.",
)
def attention_tensors(
    context: dg.AssetExecutionContext, config: HistoryConfig, warehouse: WarehouseResource, **models
) -> dict:
    symbol = partition_symbol(context)
    _, _, loaded = load_inputs(warehouse, symbol, models, config.history_days)
    folder = warehouse.paths().root / "attention" / symbol
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
    prune_versions(folder, ".npz", warehouse.keep_versions, protect=files.values())
    frame = pl.DataFrame(rows)
    with warehouse.connect() as con:
        replace_table_slice(con, "attention_summary", symbol, frame, ATTENTION_SUMMARY_DDL)
    context.add_output_metadata(
        {
            "summary": dg.MetadataValue.md(frame_to_markdown(frame.drop("symbol", "file"))),
            "folder": dg.MetadataValue.path(str(folder)),
        }
    )
    return files


@dg.asset(
    partitions_def=symbols_partitions,
    ins={"attention_tensors": dg.AssetIn(), **MODEL_INS},
    pool="gpu",
    group_name="analysis",
    kinds={"pytorch"},
    owners=OWNERS,
    code_version=ANALYSIS_CODE_VERSION,
    automation_condition=EAGER_AFTER_CHECKS,
    description="Attention metrics per model, pool and head with block-bootstrap intervals, against untrained "
    "and shuffled-target controls, with ablation, position-matched deletion and attribution checks.",
)
def attention_analysis(
    context: dg.AssetExecutionContext,
    config: HistoryConfig,
    warehouse: WarehouseResource,
    attention_tensors: dict,
    **models,
) -> dict:
    """dict of model name -> `AttentionAnalysis`; the JSON beside the report holds `to_dict()` of each."""
    symbol = partition_symbol(context)
    _, _, loaded = load_inputs(warehouse, symbol, models, config.history_days)
    tensors = {name: load_attention(attention_tensors[name]) for name in loaded}
    results = analyse_all(loaded, tensors, log=context.log.info)
    rows = [
        {"symbol": symbol, "model": name, "metric": metric, "median": q.median, "p25": q.p25, "p75": q.p75}
        for name, an in results.items()
        for metric, q in an.summary.quartiles().items()
    ]
    with warehouse.connect() as con:
        replace_table_slice(con, "attention_metrics", symbol, pl.DataFrame(rows), ATTENTION_METRICS_DDL)
    out_dir = warehouse.paths().reports / symbol
    payload = {name: an.to_dict() for name, an in results.items()}
    write_json_atomic(out_dir / "attention_analysis.json", payload, allow_nan=False, default=None)
    verdicts = pl.DataFrame(
        [{"model": m, **{k: str(v) for k, v in an.verdict.to_dict().items()}} for m, an in results.items()]
    )
    context.add_output_metadata(
        {
            "verdicts": dg.MetadataValue.md(frame_to_markdown(verdicts)),
            "analysis": dg.MetadataValue.path(str(out_dir / "attention_analysis.json")),
        }
    )
    return results
