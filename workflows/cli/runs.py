"""Running one of the Definitions' jobs for one symbol, and what the terminal says about its result."""

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from workflows.settings import DataPaths

if TYPE_CHECKING:
    import dagster as dg

    from workflows.defs.assets_data import CandlesConfig


# Everything of the `pipeline` job after the candles: what `workflows run --symbol S` runs on landed candles.
def after_candles() -> list:
    import dagster as dg

    from workflows.ml.profiles import model_kinds

    names = ["features", *(f"{k}_model" for k in model_kinds()), "evaluation", "attention_tensors"]
    names += ["attention_analysis", "report", "production_model", "latest_forecast"]
    return [dg.AssetKey(n) for n in names]


def run_for_symbol(
    instance,
    symbol: str,
    candles_config: "CandlesConfig | None",
    job_name: str = "ingest",
    ops: "Mapping[str, dg.Config] | None" = None,
    verbose: bool = True,
):
    """Run one of the Definitions' jobs for one symbol; returns the Dagster result.

    `candles_config` None: the candles already landed are used (the job's assets after `candles`). `ops`: asset
    name -> its Config (`dg.RunConfig` turns them into the run's config).
    Unless `verbose`, the terminal shows one line per step and progress bars (`workflows.cli.terminal`);
    the full event stream is in the run's event log either way."""
    import dagster as dg

    from workflows.cli.terminal import console_config, execute_with_progress
    from workflows.definitions import defs
    from workflows.defs.partitions import symbols_partitions

    instance.add_dynamic_partitions(symbols_partitions.name, [symbol])
    job = defs.resolve_job_def(job_name)
    ops = dict(ops or {})
    selection = None
    if candles_config is None:
        selection = after_candles() if job_name != "ingest" else [dg.AssetKey("features")]
    else:
        ops["candles"] = candles_config
    run_config = dg.RunConfig(ops=ops, loggers=console_config(verbose))
    return execute_with_progress(
        lambda run_id: job.execute_in_process(
            run_config=run_config,
            instance=instance,
            partition_key=symbol,
            raise_on_error=False,
            asset_selection=selection,
            run_id=run_id,
        ),
        instance,
        verbose,
    )


def failure_messages(result) -> list[str]:
    """The root cause of each failed step, one line each (the full traces are in the run's log)."""
    out = []
    for e in result.all_events:
        if e.is_step_failure and e.step_failure_data is not None and e.step_failure_data.error is not None:
            error = e.step_failure_data.error
            while error.cause is not None:
                error = error.cause
            out.append(error.message.strip())
    return out


def summary_lines(result) -> list[str]:
    """The report's bottom line and summary sentences, from the run's typed results."""
    from workflows.reporting.report import bottom_line, summary_sentences

    ev = result.output_for_node("evaluation")
    analyses = result.output_for_node("attention_analysis")
    return [bottom_line(ev), *(f"- {s}" for s in summary_sentences(ev, analyses))]


def summary(result, paths: DataPaths, symbol: str, started: float, what: str, landed=None) -> int:
    import time

    from workflows.ml.profiles import model_kinds

    if not result.success:
        print(f"{what} run {result.run_id} failed; see `make ui` for its logs", file=sys.stderr)
        return 1
    for key in ("candles", "features"):
        meta = metadata_of(result, key) or (metadata_of(landed, key) if landed is not None else {})
        print(f"  {key}: {meta.get('dagster/row_count', '?')} rows")
    print(f"  {'model':<16} {'params':>9} {'epochs':>6} {'val skill vs zero':>18} {'device':>6} {'wall s':>7}")
    for kind in model_kinds():
        meta = metadata_of(result, f"{kind}_model")
        print(
            f"  {kind:<16} {meta.get('parameters', 0):>9,} {meta.get('epochs_run', 0):>6} "
            f"{meta.get('val_skill_vs_zero', float('nan')):>+18.4f} {meta.get('device', '?'):>6} "
            f"{meta.get('wall_s', 0):>7.1f}"
        )
    report_dir = paths.reports / symbol
    report = report_dir / "attention_report.md"
    print("\nSummary (as in the report):")
    for line in summary_lines(result):
        print("  " + line.replace("**", ""))
    gate = metadata_of(result, "production_model")
    if gate:
        verdict = "PROMOTED" if gate.get("promoted") else "REFUSED"
        print(f"\npromotion gate: {verdict} ({gate.get('reason', '')}); serving: {gate.get('serving', '?')}")
    served = metadata_of(result, "latest_forecast")
    if served.get("freshness"):  # when it was made, for which hour; stale: when forecasting can resume
        print(f"served: {served['freshness']}")
    print(f"\nreport: {report}")
    if gate.get("record"):
        print(f"gate decision: {gate['record']}")
    for png in sorted(report_dir.glob("*.png")):
        print(f"figure: {png}")
    print(
        f"{what} run {result.run_id} succeeded in {time.perf_counter() - started:.0f} s; warehouse: {paths.warehouse}"
    )
    print("browse it with `make ui` (http://127.0.0.1:3000)")
    return 0


def metadata_of(result, node: str) -> dict:
    mats = result.asset_materializations_for_node(node)
    return {k: v.value for k, v in mats[-1].metadata.items()} if mats else {}
