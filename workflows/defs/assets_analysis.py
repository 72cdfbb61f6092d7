"""Evaluation and the report, per symbol."""

import dagster as dg
from pydantic import Field

from workflows.defs.assets_data import OWNERS
from workflows.defs.inputs import ANALYSIS_CODE_VERSION, MODEL_INS, load_inputs
from workflows.defs.partitions import EAGER_AFTER_CHECKS, EVERY_PERIOD_OF_SYMBOL, partition_symbol, symbols_partitions
from workflows.defs.resources import WarehouseResource
from workflows.evaluation.evidence import Evaluation
from workflows.evaluation.forecast_log import comparisons_frame, pooled_evaluation, store_evaluation
from workflows.io import write_json_atomic, write_text_atomic
from workflows.reporting.markdown import frame_to_markdown
from workflows.reporting.preview import ui_markdown
from workflows.reporting.report import (
    ReportInputs,
    attention_source,
    bottom_line,
    data_note,
    period_attention_source,
    write_report,
)
from workflows.reporting.report_figures import report_figures


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
    profile = models["attention_lstm_model"].profile
    with warehouse.connect() as con:
        ev = pooled_evaluation(con, symbol, config.periods or None, profile)
        if ev is None:  # the model assets read a stored period, so the log holds one unless it was deleted since
            raise dg.Failure(
                f"no forecast period of {symbol} is in the forecast log: backfill the periods (`workflows run`)"
            )
        store_evaluation(con, symbol, ev)
    write_json_atomic(warehouse.paths().reports / symbol / "evaluation.json", ev.to_dict())
    context.log.info(bottom_line(ev).replace("**", ""))
    context.add_output_metadata(
        {
            "test_hours": ev.hours,
            "note": ev.note,
            "surviving_comparisons": len(ev.survivors()),
            "family": dg.MetadataValue.md(frame_to_markdown(comparisons_frame(ev))),
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
    warehouse: WarehouseResource,
    evaluation: Evaluation,
    attention_analysis: dict,
    attention_tensors: dict,
    **models,
) -> dg.MaterializeResult:
    symbol = partition_symbol(context)
    _, sources, loaded = load_inputs(warehouse, symbol, models)
    out_dir = warehouse.paths().reports / symbol
    checkpoints = {m: c for m, (c, _) in loaded.items()}
    figs = report_figures(symbol, out_dir, evaluation, attention_analysis, attention_tensors, checkpoints)
    periods = {m: (models[f"{m}_model"].period, c.path.name) for m, c in checkpoints.items()}
    text = write_report(
        ReportInputs(
            symbol=symbol,
            data_note=data_note(sources),
            evaluation=evaluation,
            analyses=attention_analysis,
            figures=figs,
            profiles={m: models[f"{m}_model"].profile for m in checkpoints},
            training={m: c.training for m, c in checkpoints.items()},
            attention_source=period_attention_source(attention_analysis)
            or attention_source(periods, loaded["attention_lstm"][1].test.end_ts),
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
            "figures": ", ".join(figs.values()),
        }
    )
