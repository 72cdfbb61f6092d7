"""The promotion gate (`production_model`) and the served forecast (`latest_forecast`)."""

from datetime import datetime, timezone

import dagster as dg
from pydantic import Field

from workflows.data.warehouse import load_features
from workflows.defs.assets_data import OWNERS
from workflows.defs.inputs import period_candidates
from workflows.defs.partitions import EAGER_AFTER_CHECKS, partition_symbol, symbols_partitions
from workflows.defs.resources import WarehouseResource
from workflows.io import write_text_atomic
from workflows.ml.model_ref import ModelRef
from workflows.ml.profiles import served_kind
from workflows.serving.freshness import DEFAULT_MAX_AGE_HOURS
from workflows.serving.gate_closes import Candidate, judge
from workflows.serving.gate_record import GATE_RECORD, gate_metadata, gate_record, with_history, with_newest_tested
from workflows.serving.promotion import GateConfig
from workflows.serving.serve import NothingServedYet, serve_next_hour
from workflows.serving.served_record import served_metadata

SERVED_KIND = served_kind()  # the registry says which kind serves (ml/profiles.py)
# 2: conformal intervals from the promoting decision; 3: the append-only served record; 4: the intervals of the
# report (one conformal state over the forecast log, evaluation/intervals.py), the served sd in the record, and the
# served row's age
SERVING_CODE_VERSION = "4"
GATE_CODE_VERSION = "4"  # 3: fresh hours, resolvable margin; 4: one anytime-valid test per candidate, lifetime budget


class PromotionGateConfig(dg.Config):
    margin: float = Field(
        default=GateConfig.margin,
        description="Non-inferiority margin against an incumbent, a fraction of its MSE (fixed: 0.001 = 0.1%): the "
        "null is 'the candidate is worse by this much or more'",
    )
    alpha: float = Field(
        default=GateConfig.alpha,
        description="Lifetime error budget over every test on a symbol: the k-th runs at 6 alpha / (pi^2 k^2)",
    )
    min_hours: int = Field(
        default=GateConfig.min_hours,
        description="Burn-in of the sequential test: crossings before this many evidence hours do not count",
    )
    t_opt: int = Field(
        default=GateConfig.t_opt, description="Evidence hours at which the e-process's boundary is tightest"
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
            description="The candidate replaces production only when its anytime-valid test (normal-mixture "
            "e-process on every hour it forecast out of sample) rejects 'no more accurate than zero' (nothing "
            "serves) or 'worse than the incumbent by the margin' at its share alpha_k of the lifetime budget, and "
            "its served 80%/95% intervals (Kupiec, Christoffersen, Monte Carlo) and direction probabilities "
            "(Brier vs base rate) pass as one Holm family on the same hours. The serving checkpoint itself is "
            "not a decision.",
        )
    ],
    description=f"Pointer to the {SERVED_KIND} checkpoint that serves forecasts, moved only through the gate.",
)
def production_model(
    context: dg.AssetExecutionContext, config: PromotionGateConfig, warehouse: WarehouseResource, candidate: ModelRef
):
    symbol = partition_symbol(context)
    folder = warehouse.paths().checkpoints / symbol
    with warehouse.connect() as con:
        table, _ = load_features(con, symbol)
        months = period_candidates(con, symbol, SERVED_KIND)
    newest = Candidate(candidate.period, candidate.path, candidate.sha256)
    rule = GateConfig(margin=config.margin, alpha=config.alpha, min_hours=config.min_hours, t_opt=config.t_opt)
    # the months' closes not judged yet, then the newest candidate on every hour, each under the symbol's lock
    decision, pointer, looks = judge([*(m for m in months if m.period < newest.period), newest], folder, table, rule)
    context.log.info(f"promotion gate: {'PROMOTED' if decision.promoted else 'REFUSED'} ({decision.reason})")
    metadata = gate_metadata(decision)
    serving = (pointer or {}).get("path", "zero-return forecast (nothing promoted yet)")
    record = gate_record(symbol, candidate.file_name, decision, serving)
    path = warehouse.paths().reports / symbol / GATE_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = path.read_text() if path.exists() else ""
    write_text_atomic(path, with_history(with_newest_tested(record, decision, previous), looks))
    shown = {**metadata, "tests": dg.MetadataValue.md(metadata.get("tests", "no test ran"))}
    return dg.MaterializeResult(
        metadata={**shown, "serving": serving, "record": dg.MetadataValue.path(str(path))},
        check_results=[
            dg.AssetCheckResult(
                check_name="promotion_gate",
                passed=decision.promoted,
                # A refusal keeps the current model serving; it warns rather than stopping the forecast.
                severity=dg.AssetCheckSeverity.WARN,
                metadata=shown,
            )
        ],
    )


class ServingConfig(dg.Config):
    max_age_hours: float = Field(
        default=DEFAULT_MAX_AGE_HOURS,
        description="Hours after the forecast hour began past which the served forecast is flagged stale",
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
    check_specs=[
        dg.AssetCheckSpec(
            "forecast_age",
            asset="latest_forecast",
            description="The served forecast is current: its hour began at most max_age_hours ago and the newest "
            "hours could be forecast (no gap left too few consecutive hours); else it says when forecasting resumes.",
        )
    ],
    description="Next-hour return, direction probabilities and conformal 80%/95% intervals from the production "
    "model (the report's intervals: one adaptive conformal state over the forecast log, scaled by the model's "
    "sd), appended to the served record (`served_forecasts`) with the record's coverage so far, with when it was "
    "made, for which hour, and whether it is stale.",
)
def latest_forecast(
    context: dg.AssetExecutionContext, config: ServingConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    symbol = partition_symbol(context)
    paths = warehouse.paths()
    try:
        served = serve_next_hour(
            warehouse.connect,
            symbol,
            SERVED_KIND,
            paths.checkpoints / symbol,
            paths.reports / symbol,
            datetime.now(timezone.utc),
            config.max_age_hours,
        )
    except NothingServedYet as exc:
        raise dg.Failure(str(exc)) from exc
    age = served.age
    (context.log.warning if age.stale else context.log.info)(f"{symbol}: {age.describe()}")
    shown = served.forecast.metadata() if served.forecast is not None else {}
    return dg.MaterializeResult(
        metadata=shown
        | age.metadata()
        | {
            "appended_to_record": served.appended,
            **served_metadata(served.figures),
            "served_record": dg.MetadataValue.path(str(served.record)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="forecast_age",
                passed=not age.stale,
                severity=dg.AssetCheckSeverity.WARN,
                metadata=age.metadata(),
            )
        ],
    )
