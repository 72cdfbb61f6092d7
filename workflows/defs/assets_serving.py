"""The promotion gate (`production_model`) and the served forecast (`latest_forecast`)."""

from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import polars as pl
from pydantic import Field

from workflows.data.warehouse import load_features, replace_table_slice
from workflows.defs.assets_data import OWNERS
from workflows.defs.inputs import model_window_data
from workflows.defs.partitions import EAGER_AFTER_CHECKS, partition_symbol, symbols_partitions
from workflows.defs.resources import WarehouseResource
from workflows.io import write_text_atomic
from workflows.ml.checkpoints import load_checkpoint
from workflows.ml.profiles import served_kind
from workflows.reporting.markdown import frame_to_markdown
from workflows.serving.promotion import (
    GateConfig,
    GateDecision,
    forecast_next_hour,
    gate,
    load_current,
    promote,
)

SERVED_KIND = served_kind()  # the registry says which kind serves (ml/profiles.py)
SERVING_CODE_VERSION = "2"  # 2: conformal intervals from the promoting decision
GATE_CODE_VERSION = (
    "3"  # 2: evidence on out-of-sample hours; 3: fresh hours, beat zero first, resolvable margin, calibration
)
FORECASTS_DDL = (
    "CREATE TABLE IF NOT EXISTS forecasts (symbol VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, model VARCHAR, "
    "return_pct DOUBLE, lo80_pct DOUBLE, hi80_pct DOUBLE, p_down DOUBLE, p_stable DOUBLE, p_up DOUBLE)"
)


class PromotionGateConfig(dg.Config):
    margin: float = Field(
        default=GateConfig.margin,
        description="Ceiling of the non-inferiority margin against the incumbent, as a fraction of its MSE; the "
        "margin applied is the smaller of this and the MSE difference the hours resolve (alpha, power 0.8)",
    )
    alpha: float = Field(default=GateConfig.alpha, description="Level of each one-sided test (DM, non-inferiority)")
    min_hours: int = Field(
        default=GateConfig.min_hours,
        description="Fewest fresh test hours (out of sample for both models, after the last decision's hours) "
        "before the gate decides anything",
    )


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.2%}" if pct else f"{value:.4g}"


def gate_metadata(decision: GateDecision) -> dict:
    """What the UI shows for one gate decision: the verdict, every figure it decided on and the hours it rests on."""
    d = decision
    tests = pl.DataFrame(
        [
            {
                "comparison": "candidate vs incumbent",
                "comparator_mse": _fmt(d.mse_current),
                "p_superior": _fmt(d.p_better_than_current),
                "p_noninferior": _fmt(d.p_noninferior_to_current),
                "upper_bound_excess_mse": _fmt(d.upper_excess_vs_current, pct=True),
            },
            {
                "comparison": "candidate vs zero return",
                "comparator_mse": _fmt(d.mse_zero),
                "p_superior": _fmt(d.p_better_than_zero),
                "p_noninferior": "n/a",
                "upper_bound_excess_mse": _fmt(d.upper_excess_vs_zero, pct=True),
            },
        ]
    )
    calibration = pl.DataFrame(
        [
            {
                "interval": f"{pct}%",
                "coverage_before": _fmt(getattr(d, f"raw_coverage_{pct}"), pct=True).lstrip("+"),
                "coverage_after": _fmt(getattr(d, f"coverage_{pct}"), pct=True).lstrip("+"),
                "kupiec_p": _fmt(getattr(d, f"kupiec_p_{pct}")),
                "christoffersen_p": _fmt(getattr(d, f"christoffersen_p_{pct}")),
                "conformal_q_served": _fmt(getattr(d, f"conformal_q{pct}")),
                "at_level": _fmt(getattr(d, f"conformal_level_{pct}"), pct=True).lstrip("+"),
            }
            for pct in (80, 95)
        ]
    )
    margin = (
        f"non-inferiority margin {d.margin_used:.2%} of the incumbent's MSE (the {d.margin:.1%} ceiling, capped at "
        f"the {d.resolvable_excess:.2%} these hours resolve at power 0.8)"
        if d.margin_used is not None and d.resolvable_excess is not None
        else "no margin: with nothing (or a legacy checkpoint) serving, the candidate must beat the zero forecast"
    )
    meta = {
        "promoted": d.promoted,
        "basis": d.basis or "refused",
        "comparator": d.comparator or "none",
        "reason": d.reason,
        "hours_compared": d.hours,
        "hours_offered": d.hours_offered,
        "min_hours": d.min_hours,
        "hours_in_sample_candidate": d.hours_in_sample_candidate,
        "hours_in_sample_incumbent": d.hours_in_sample_current,
        "hours_without_window": d.hours_without_window,
        "hours_already_decided": d.hours_already_decided,
        "decided_through": d.decided_through,
        "first_hour": d.first_hour,
        "last_hour": d.last_hour,
        "candidate_last_target": d.candidate_last_target,
        "incumbent_last_target": d.current_last_target,
        "incumbent_window_known": d.current_window_known,
        "alpha": d.alpha,
        "margin": d.margin,
        "margin_used": d.margin_used,
        "resolvable_excess": d.resolvable_excess,
        "mse_candidate": d.mse_candidate,
        "mse_incumbent": d.mse_current,
        "mse_zero": d.mse_zero,
        "skill_vs_zero": d.skill_vs_zero,
        "p_better_than_incumbent": d.p_better_than_current,
        "p_noninferior_to_incumbent": d.p_noninferior_to_current,
        "p_better_than_zero": d.p_better_than_zero,
        "p_zero_better": d.p_zero_better,
        "calibration_hours": d.calibration_hours,
        "coverage_hours": d.coverage_hours,
        "coverage_80": d.coverage_80,
        "kupiec_p_80": d.kupiec_p_80,
        "christoffersen_p_80": d.christoffersen_p_80,
        "conformal_q80": d.conformal_q80,
        "coverage_95": d.coverage_95,
        "kupiec_p_95": d.kupiec_p_95,
        "christoffersen_p_95": d.christoffersen_p_95,
        "conformal_q95": d.conformal_q95,
        "brier": d.brier,
        "brier_base_rate": d.brier_base_rate,
        "brier_skill": d.brier_skill,
        "p_base_rate_better": d.p_base_rate_better,
        "tests": dg.MetadataValue.md(
            f"One-sided tests at alpha = {d.alpha} on {d.hours} fresh hours; {margin}; upper bound: one-sided "
            f"{1 - d.alpha:.0%} bound of (MSE_candidate - MSE_comparator) / MSE_comparator.\n\n"
            + frame_to_markdown(tests)
            + (
                f"\n\nServed intervals, adaptive conformal scaled by the predictive sd (quantiles in sds): the first "
                f"{d.calibration_hours} hours only calibrate, coverage tested on the last {d.coverage_hours}; before: "
                f"the Gaussian interval on the same hours.\n\n" + frame_to_markdown(calibration)
                if d.coverage_hours is not None
                else ""
            )
            + (
                f"\n\nDirection probabilities: Brier {d.brier:.4f} vs base rate {d.brier_base_rate:.4f} "
                f"(skill {d.brier_skill:+.2%}, p(base rate better) = {d.p_base_rate_better:.3g})."
                if d.brier is not None
                and d.brier_base_rate is not None
                and d.brier_skill is not None
                and d.p_base_rate_better is not None
                else ""
            )
        ),
    }
    return {k: v for k, v in meta.items() if v is not None}


GATE_RECORD = "promotion_gate.md"  # beside the report: the newest decision, in words and with every figure
DECISION_HEADING = "## The gate's decision"
TESTED_HEADING = "## The newest decision that ran its tests"


def with_newest_tested(record: str, decision: GateDecision, previous: str) -> str:
    """A decision that judged no hour (nothing fresh: a rerun on the same data) keeps the newest decision that ran
    its tests below it, so the record never loses the figures the serving state rests on."""
    if decision.hours > 0 or not previous:
        return record
    if TESTED_HEADING in previous:  # the previous record was itself untested: carry what it carried
        earlier = previous.split(TESTED_HEADING, 1)[1]
    elif DECISION_HEADING in previous:
        earlier = previous.split(DECISION_HEADING, 1)[1]
    else:
        return record
    return f"{record.rstrip()}\n\n{TESTED_HEADING}\n{earlier}"


def gate_record(symbol: str, candidate: str, decision: GateDecision, tests_md: str, serving: str) -> str:
    """The newest gate decision as Markdown: what was decided, on which hours, every figure it decided on."""
    d = decision
    hours = f"{d.first_hour} .. {d.last_hour}" if d.first_hour and d.last_hour else "none"
    return "\n".join(
        [
            f"# Promotion gate: {symbol}",
            "",
            f"Decided {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on the candidate `{candidate}`.",
            "",
            DECISION_HEADING,
            "",
            f"**{'PROMOTED' if d.promoted else 'REFUSED'}**: {d.reason}",
            "",
            f"- serving now: {serving}",
            f"- fresh hours compared: {d.hours} ({hours}); hours offered {d.hours_offered}, of which already judged "
            f"by an earlier decision {d.hours_already_decided}; at least {d.min_hours} needed",
            "",
            tests_md,
            "",
        ]
    )


@dg.asset(
    partitions_def=symbols_partitions,
    ins={"candidate": dg.AssetIn(f"{SERVED_KIND}_model")},
    deps=["features"],
    group_name="serving",
    kinds={"pytorch"},
    owners=OWNERS,
    code_version=GATE_CODE_VERSION,
    automation_condition=EAGER_AFTER_CHECKS,
    check_specs=[
        dg.AssetCheckSpec(
            "promotion_gate",
            asset="production_model",
            blocking=True,
            description="The candidate replaces production only on evidence from fresh test hours (out of sample "
            "for both models, after the last decision's hours): significantly better than the zero-return forecast "
            "when nothing serves; else significantly better than the incumbent or non-inferior within the margin "
            "the hours resolve, and not significantly worse than zero; and its served 80%/95% intervals (Kupiec, "
            "Christoffersen) and direction probabilities (Brier vs base rate) calibrated on the same hours.",
        )
    ],
    description=f"Pointer to the {SERVED_KIND} checkpoint that serves forecasts, moved only through the gate.",
)
def production_model(
    context: dg.AssetExecutionContext, config: PromotionGateConfig, warehouse: WarehouseResource, candidate: dict
):
    symbol = partition_symbol(context)
    folder = warehouse.paths().checkpoints / symbol
    with warehouse.connect() as con:
        table, version = load_features(con, symbol, candidate.get("history_days"))  # the candidate's window
    ckpt = load_checkpoint(candidate["path"], candidate["sha256"])
    data = model_window_data(candidate, ckpt, table, version)  # a period model: its period's hours
    rule = GateConfig(margin=config.margin, alpha=config.alpha, min_hours=config.min_hours)
    # read the incumbent, judge and move the pointer under the symbol's lock: no two runs promote against one incumbent
    decision, pointer = promote(
        folder,
        candidate["path"],
        candidate["sha256"],
        lambda current, decided_through: gate(ckpt, current, table, data.test.end_ts, rule, decided_through),
    )
    context.log.info(f"promotion gate: {'PROMOTED' if decision.promoted else 'REFUSED'} ({decision.reason})")
    metadata = gate_metadata(decision)
    serving = (pointer or {}).get("path", "zero-return forecast (nothing promoted yet)")
    tests = metadata.get("tests")
    record = gate_record(
        symbol, Path(candidate["path"]).name, decision, str(tests.value) if tests is not None else "", serving
    )
    path = warehouse.paths().reports / symbol / GATE_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, with_newest_tested(record, decision, path.read_text() if path.exists() else ""))
    return dg.MaterializeResult(
        metadata={**metadata, "serving": serving, "record": dg.MetadataValue.path(str(path))},
        check_results=[
            dg.AssetCheckResult(
                check_name="promotion_gate",
                passed=decision.promoted,
                # A refusal keeps the current model serving; it warns rather than stopping the forecast.
                severity=dg.AssetCheckSeverity.WARN,
                metadata=metadata,
            )
        ],
    )


@dg.asset(
    partitions_def=symbols_partitions,
    deps=[production_model, "features"],
    pool="duckdb",
    group_name="serving",
    kinds={"duckdb"},
    owners=OWNERS,
    code_version=SERVING_CODE_VERSION,
    automation_condition=EAGER_AFTER_CHECKS,
    description="Next-hour return, direction probabilities and conformal 80%/95% intervals from the production "
    "model (adaptive conformal on its newest out-of-sample hours).",
)
def latest_forecast(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    symbol = partition_symbol(context)
    with warehouse.connect() as con:
        table, _ = load_features(con, symbol)  # none: an error saying how to make them
    folder = warehouse.paths().checkpoints / symbol
    current = load_current(folder)
    forecast = forecast_next_hour(current, table)
    probs = forecast.get("direction_probabilities") or {}
    lo, hi = forecast.get("interval_80_pct") or [None, None]
    row = pl.DataFrame(
        [
            {
                "symbol": symbol,
                "ts": pl.Series([forecast["forecast_hour"]]).str.to_datetime(time_zone="UTC")[0],
                "model": forecast["model"],
                "return_pct": forecast["return_pct"],
                "lo80_pct": lo,
                "hi80_pct": hi,
                "p_down": probs.get("DOWN"),
                "p_stable": probs.get("STABLE"),
                "p_up": probs.get("UP"),
            }
        ]
    )
    with warehouse.connect() as con:
        replace_table_slice(con, "forecasts", symbol, row, FORECASTS_DDL)
    context.log.info(f"{symbol} {forecast['forecast_hour']}: {forecast['return_pct']:+.4f}% ({forecast['model']})")
    return dg.MaterializeResult(
        metadata={k: (str(v) if isinstance(v, (dict, list)) or v is None else v) for k, v in forecast.items()}
    )
