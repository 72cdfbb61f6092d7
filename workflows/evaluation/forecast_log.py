"""The forecast log: a pseudo-out-of-sample reconstruction of what every model, control and baseline would have
said about each hour, from models trained on earlier hours only, written once the outcome hour has landed.

One DuckDB table, `forecast_log`, long format, one row per (symbol, period,
forecaster, origin hour, quantity):

* `name`, `role`: a model kind (`model`), a trained control (`control`: the
  no-attention twins and the ridge regressions), a volatility baseline
  (`baseline`), or `observed`: what happened (the next hour's return `actual`, the
  realised 24-hour variance `realised_var`) and the period's training mean return
  (`train_mean`, the mean-forecast benchmark);
* `origin_ts`: the last input hour t; `target_ts` = t + 1, the hour forecast;
* `quantity`: `ret` (next-hour log return), `var` (its predictive variance),
  `vol_var` (mean variance of the next 24 hours), `next_var` (the next hour's
  variance), in raw log-return units; `p_down`, `p_stable`, `p_up` (a direction
  head's class probabilities). `observed` also holds `direction` (the class that
  happened: 0 DOWN, 1 STABLE, 2 UP) and `base_down`, `base_stable`, `base_up` (the
  training slice's class frequencies, the base-rate forecast); logs written before
  these existed load without them;
* `model_version` (the checkpoint's sha256; for a forecaster fitted inside the
  period's computation, `fitted:` + the training slice's version), `code_version`,
  `data_version` (the training slice's content hash), `written_at`.

The rule: a stored forecast is never recomputed unless one of its versions changes.
`plan_period` compares the stored versions of a period with the current ones: all
equal, only origins not yet stored are computed (a new day adds its forecasts and
leaves every earlier row untouched); any differ, the whole period is recomputed.
Writes delete the slice (symbol, period, and the written origins) and insert, in one
transaction (`warehouse.replace_rows`).

`forecast_periods` holds one row per stored period: its test and training span,
the models' training effort, and any baseline that could not be fitted.
"""

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import duckdb
import numpy as np
import polars as pl

from workflows.data.warehouse import replace_rows, table_exists
from workflows.evaluation.evidence import VOLATILITY_MODEL, Evaluation, FoldSpan, ForecastSet, evaluate_forecasts
from workflows.evaluation.intervals import IntervalHistory
from workflows.evaluation.walk_forward import forecast_set, model_forecasts, recalibrated
from workflows.ml.checkpoints import Checkpoint
from workflows.ml.periods import ForecastPeriod, PeriodConfig, period_windows, training_slice_version
from workflows.ml.profiles import control_kinds, model_kinds
from workflows.ml.training import predict
from workflows.ml.windows import Split, WindowData, WindowSpec

# Bump when a change to how forecasts are computed (baselines, ridge controls, scaling) should recompute the log.
# "2": the direction probabilities, the observed class and the training base rates are stored.
FORECAST_CODE_VERSION = "2"
OBSERVED = "observed"
ATTRIBUTES = {"returns": "ret", "variances": "var", "vol_var": "vol_var", "next_var": "next_var"}
OBSERVED_ATTRIBUTES = {"actual": "actual", "train_mean": "train_mean", "realised_var": "realised_var"}
PROBABILITY_QUANTITIES = ("p_down", "p_stable", "p_up")  # columns of ForecastSet.probabilities[name]
BASE_RATE_QUANTITIES = ("base_down", "base_stable", "base_up")  # columns of ForecastSet.base_rates
DIRECTION = "direction"

FORECAST_LOG_DDL = (
    "CREATE TABLE IF NOT EXISTS forecast_log (symbol VARCHAR NOT NULL, period VARCHAR NOT NULL, "
    "name VARCHAR NOT NULL, role VARCHAR NOT NULL, origin_ts TIMESTAMP NOT NULL, target_ts TIMESTAMP NOT NULL, "
    "quantity VARCHAR NOT NULL, value DOUBLE, model_version VARCHAR NOT NULL, code_version VARCHAR NOT NULL, "
    "data_version VARCHAR NOT NULL, written_at TIMESTAMP NOT NULL)"
)
FORECAST_PERIODS_DDL = (
    "CREATE TABLE IF NOT EXISTS forecast_periods (symbol VARCHAR NOT NULL, period VARCHAR NOT NULL, "
    "test_start VARCHAR, test_end VARCHAR, test_hours INTEGER, train_windows INTEGER, train_start VARCHAR, "
    "train_end VARCHAR, seconds DOUBLE, epochs VARCHAR, models VARCHAR, errors VARCHAR, "
    "code_version VARCHAR NOT NULL, data_version VARCHAR NOT NULL, written_at TIMESTAMP NOT NULL)"
)


class StaleForecastError(RuntimeError):
    """A period model was trained on other data than the feature table holds before its period now."""


def role_of(name: str) -> str:
    if name == OBSERVED:
        return OBSERVED
    if name in model_kinds():
        return "model"
    if name in control_kinds() or name.startswith("ridge_"):
        return "control"
    return "baseline"


@dataclass(frozen=True)
class ForecastVersions:
    """The versions a period's forecasts are stored with."""

    models: dict[str, str]  # forecaster -> checkpoint sha256
    code: str
    data: str  # the training slice's content hash (every forecaster of the period was fitted on it)

    def model_version(self, name: str) -> str:
        return self.models.get(name, f"fitted:{self.data}")


@dataclass(frozen=True)
class PeriodPlan:
    """What to compute for one period: every origin (`recompute`) or only those not yet stored."""

    recompute: bool
    stored: frozenset = field(default_factory=frozenset)  # origins (numpy datetime64[us]) stored and current
    reason: str = ""


def spec_of(ckpt: Checkpoint) -> WindowSpec:
    d = dict(ckpt.window_spec)
    d["features"] = tuple(d["features"])
    return WindowSpec(**d)


def _subset(split: Split, keep: np.ndarray) -> Split:
    return Split(*(getattr(split, f)[keep] for f in ("x", "ret", "vol", "direction", "end_ts", "raw_ret")))


def period_data(
    features: pl.DataFrame, checkpoints: dict[str, Checkpoint], period: ForecastPeriod, cfg: PeriodConfig
) -> tuple[dict[tuple[str, ...], WindowData], str]:
    """The period's windows for each feature set of `checkpoints`, and the training slice's version; refuses a
    checkpoint trained on another slice (its scaler would differ from the one its forecasts assume)."""
    datas: dict[tuple[str, ...], WindowData] = {}
    versions = set()
    for name, ckpt in checkpoints.items():
        spec = spec_of(ckpt)
        version = training_slice_version(features, spec, period, cfg)
        if ckpt.data_version != version:
            raise StaleForecastError(
                f"{name} model of {period} ({ckpt.path.name}) was trained on training slice {ckpt.data_version}, "
                f"but the features before {period.start:%Y-%m-%d} now hash to {version}: rematerialise the "
                f"period's models (their asset partition {period.key})"
            )
        versions.add(version)
        if spec.features not in datas:
            datas[spec.features] = period_windows(features, spec, period, cfg, version)
        if not np.allclose(datas[spec.features].scaler.mean, ckpt.scaler.mean):
            raise StaleForecastError(f"{ckpt.path.name}: its scaler differs from the one its training slice gives")
    ends = [d.test.end_ts for d in datas.values()]
    if any(not np.array_equal(ends[0], e) for e in ends[1:]):
        raise RuntimeError(f"{period}: models with different features were given different test hours")
    return datas, "+".join(sorted(versions))


def period_forecasts(
    features: pl.DataFrame,
    checkpoints: dict[str, Checkpoint],
    period: ForecastPeriod,
    cfg: PeriodConfig,
    skip: frozenset = frozenset(),
) -> tuple[ForecastSet | None, FoldSpan, dict[str, str], str]:
    """Every forecaster's forecasts for the period's test origins not in `skip`: the checkpoints' outputs, the
    ridge controls and the volatility baselines (fitted on the period's training slice). Returns the forecasts
    (None: nothing new), the period's span (all its origins so far), baseline errors and the slice version."""
    datas, version = period_data(features, checkpoints, period, cfg)
    first = next(iter(datas.values()))
    span = FoldSpan.of(first) if len(first.test) else FoldSpan(0, "", "", len(first.train), "", "")
    keep = ~np.isin(first.test.end_ts, np.array(sorted(skip), dtype=first.test.end_ts.dtype))
    if not keep.any():
        return None, span, {}, version
    datas = {k: replace(d, test=_subset(d.test, keep)) for k, d in datas.items()}
    outputs, recal_errors = {}, {}
    for name, ckpt in checkpoints.items():
        data = datas[spec_of(ckpt).features]
        outputs[name] = model_forecasts(data, predict(ckpt.model, data.test.x))
        if name == VOLATILITY_MODEL and len(data.val):  # recalibrated in logs on the period's validation slice
            val = model_forecasts(data, predict(ckpt.model, data.val.x))
            recal, recal_errors = recalibrated(data, val, outputs[name])
            outputs[name].update(recal)
    base = datas.get(WindowSpec().features, first)
    fs, errors = forecast_set(features, base, outputs)
    return fs, span, errors | recal_errors, version


def forecast_rows(
    symbol: str, period: str, fs: ForecastSet, versions: ForecastVersions, written_at: datetime | None = None
) -> pl.DataFrame:
    """The long rows of one period's forecasts."""
    stamp = (written_at or datetime.now(timezone.utc)).replace(tzinfo=None)
    origin = fs.end_ts.astype("datetime64[us]")
    target = origin + np.timedelta64(1, "h")
    parts = []

    def add(name: str, quantity: str, values: np.ndarray) -> None:
        parts.append(
            pl.DataFrame(
                {
                    "origin_ts": origin,
                    "target_ts": target,
                    "value": np.asarray(values, dtype=np.float64),
                }
            ).with_columns(
                pl.lit(name).alias("name"),
                pl.lit(role_of(name)).alias("role"),
                pl.lit(quantity).alias("quantity"),
                pl.lit(versions.model_version(name) if name != OBSERVED else f"observed:{versions.data}").alias(
                    "model_version"
                ),
            )
        )

    for attr, quantity in OBSERVED_ATTRIBUTES.items():
        add(OBSERVED, quantity, getattr(fs, attr))
    if fs.direction is not None:
        add(OBSERVED, DIRECTION, fs.direction)
    if fs.base_rates is not None:
        for j, quantity in enumerate(BASE_RATE_QUANTITIES):
            add(OBSERVED, quantity, fs.base_rates[:, j])
    for attr, quantity in ATTRIBUTES.items():
        for name, values in getattr(fs, attr).items():
            add(name, quantity, values)
    for name, probs in fs.probabilities.items():
        for j, quantity in enumerate(PROBABILITY_QUANTITIES):
            add(name, quantity, probs[:, j])
    return pl.concat(parts).with_columns(
        pl.lit(symbol).alias("symbol"),
        pl.lit(period).alias("period"),
        pl.lit(versions.code).alias("code_version"),
        pl.lit(versions.data).alias("data_version"),
        pl.lit(stamp).alias("written_at"),
    )


def stored_versions(con: duckdb.DuckDBPyConnection, symbol: str, period: str) -> dict[str, tuple[str, str, str]]:
    """name -> (model, code, data version) of a period's stored rows (one tuple per name when consistent)."""
    if not table_exists(con, "forecast_log"):
        return {}
    rows = con.execute(
        "SELECT DISTINCT name, model_version, code_version, data_version FROM forecast_log "
        "WHERE symbol = ? AND period = ?",
        [symbol, period],
    ).fetchall()
    out: dict[str, tuple[str, str, str]] = {}
    for name, model, code, data in rows:
        out[name] = ("<mixed>", "", "") if name in out else (model, code, data)
    return out


def plan_period(
    con: duckdb.DuckDBPyConnection, symbol: str, period: str, versions: ForecastVersions, models: set[str]
) -> PeriodPlan:
    """Which of a period's origins need forecasts: all when nothing is stored, a model of `models` has no rows,
    or any stored row's versions differ from the current ones; else only the origins not yet stored."""
    stored = stored_versions(con, symbol, period)
    if not stored:
        return PeriodPlan(True, reason="nothing stored")

    def expected(name: str) -> tuple[str, str, str]:
        model = f"observed:{versions.data}" if name == OBSERVED else versions.model_version(name)
        return (model, versions.code, versions.data)

    changed = sorted({n for n in models if n not in stored} | {n for n, v in stored.items() if v != expected(n)})
    if changed:
        return PeriodPlan(True, reason=f"versions changed for {', '.join(changed)}")
    origins = con.execute(
        "SELECT DISTINCT origin_ts FROM forecast_log WHERE symbol = ? AND period = ?", [symbol, period]
    ).fetchall()
    stored_origins = frozenset(np.datetime64(o[0], "us") for o in origins)
    return PeriodPlan(False, stored_origins, f"{len(stored_origins)} origins stored and current")


def check_outcomes(
    con: duckdb.DuckDBPyConnection,
    symbol: str,
    period: ForecastPeriod,
    features: pl.DataFrame,
    checkpoints: dict[str, Checkpoint],
    cfg: PeriodConfig,
    data_version: str,
    plan: PeriodPlan,
) -> PeriodPlan:
    """The stored outcomes against the candles landed now: a candle inside the period that was corrected (or
    removed) after its hours were logged changes the returns those forecasts are judged on and the windows
    of the forecasts after it, which the versions (of the hours before the period) do not see. Any stored
    origin whose outcome differs, or that no longer has a window: the period is recomputed."""
    if not plan.stored:
        return plan
    spec = spec_of(next(iter(checkpoints.values())))
    test = period_windows(features, spec, period, cfg, data_version.split("+")[0]).test
    now = dict(zip(test.end_ts.astype("datetime64[us]").tolist(), np.asarray(test.raw_ret, dtype=np.float64)))
    rows = con.execute(
        "SELECT origin_ts, value FROM forecast_log WHERE symbol = ? AND period = ? AND name = ? AND quantity = ?",
        [symbol, period.key, OBSERVED, OBSERVED_ATTRIBUTES["actual"]],
    ).fetchall()
    changed = sorted(
        origin
        for origin, value in rows
        if origin not in now or not np.isclose(now[origin], value, rtol=1e-9, atol=1e-12, equal_nan=True)
    )
    if not changed:
        return plan
    return PeriodPlan(
        True,
        reason=f"the period's candles changed after {len(changed)} logged hour(s) were judged (first outcome "
        f"{changed[0]:%Y-%m-%d %H:%M} UTC): recomputed",
    )


@dataclass(frozen=True)
class PeriodUpdate:
    """What `update_period` did."""

    period: str
    recomputed: bool
    reason: str
    origins_added: int
    rows_written: int
    rows_deleted: int
    test_hours: int  # origins of the period with stored forecasts, after the update
    errors: dict[str, str]


def update_period(
    con: duckdb.DuckDBPyConnection,
    features: pl.DataFrame,
    symbol: str,
    period: ForecastPeriod,
    checkpoints: dict[str, Checkpoint],
    cfg: PeriodConfig,
    code_version: str = FORECAST_CODE_VERSION,
) -> PeriodUpdate:
    """Bring one period's stored forecasts up to date with its models and the hours landed so far: compute
    only what is missing or stale (`plan_period`), write it in one transaction, record the period's span."""
    shas = {name: ckpt.sha256 for name, ckpt in checkpoints.items()}
    data_version = "+".join(sorted({c.data_version for c in checkpoints.values()}))
    versions = ForecastVersions(shas, code_version, data_version)
    plan = plan_period(con, symbol, period.key, versions, set(checkpoints))
    if not plan.recompute:
        plan = check_outcomes(con, symbol, period, features, checkpoints, cfg, data_version, plan)
    fs, span, errors, version = period_forecasts(
        features, checkpoints, period, cfg, frozenset() if plan.recompute else plan.stored
    )
    assert version == data_version, (version, data_version)
    epochs = {name: int(c.training.epochs_run) for name, c in checkpoints.items()}
    span = replace(span, seconds=float(sum(c.training.wall_s for c in checkpoints.values())), epochs=epochs)
    rows = None if fs is None else forecast_rows(symbol, period.key, fs, versions)
    info = {"errors": errors, "models": shas, "code_version": code_version, "data_version": data_version}
    deleted = write_period(con, symbol, period.key, rows, plan.recompute, span, info)
    hours = con.execute(
        "SELECT count(DISTINCT origin_ts) FROM forecast_log WHERE symbol = ? AND period = ?", [symbol, period.key]
    ).fetchall()[0][0]
    return PeriodUpdate(
        period.key,
        plan.recompute,
        plan.reason,
        0 if fs is None else len(fs),
        0 if rows is None else rows.height,
        deleted,
        int(hours),
        errors,
    )


def write_period(
    con: duckdb.DuckDBPyConnection,
    symbol: str,
    period: str,
    rows: pl.DataFrame | None,
    recompute: bool,
    span: FoldSpan,
    info: dict,
) -> int:
    """Store a period's new rows (all of the period's when `recompute`, else only the rows' origins are
    replaced) and its span; returns the rows deleted. Each write is one transaction."""
    deleted = 0
    if rows is not None or recompute:
        frame = rows if rows is not None else pl.DataFrame()
        where = "symbol = ? AND period = ?"
        if not recompute:
            where += " AND origin_ts IN (SELECT DISTINCT origin_ts FROM staged_rows)"
        deleted = replace_rows(con, "forecast_log", where, [symbol, period], frame, FORECAST_LOG_DDL)
    test_hours = 0
    if table_exists(con, "forecast_log"):
        test_hours = con.execute(
            "SELECT count(DISTINCT origin_ts) FROM forecast_log WHERE symbol = ? AND period = ?", [symbol, period]
        ).fetchall()[0][0]
    row = {
        "symbol": symbol,
        "period": period,
        "test_start": span.test_start,
        "test_end": span.test_end,
        "test_hours": int(test_hours),
        "train_windows": span.train_windows,
        "train_start": span.train_start,
        "train_end": span.train_end,
        "seconds": float(span.seconds),
        "epochs": json.dumps(span.epochs),
        "models": json.dumps(info.get("models", {}), sort_keys=True),
        "errors": json.dumps(info.get("errors", {}), sort_keys=True),
        "code_version": info.get("code_version", ""),
        "data_version": info.get("data_version", ""),
        "written_at": datetime.now(timezone.utc).replace(tzinfo=None),
    }
    replace_rows(
        con,
        "forecast_periods",
        "symbol = ? AND period = ?",
        [symbol, period],
        pl.DataFrame([row]),
        FORECAST_PERIODS_DDL,
    )
    return deleted


def stored_periods(con: duckdb.DuckDBPyConnection, symbol: str) -> list[str]:
    """Periods of `symbol` with stored forecasts, oldest first."""
    if not table_exists(con, "forecast_log"):
        return []
    rows = con.execute("SELECT DISTINCT period FROM forecast_log WHERE symbol = ? ORDER BY period", [symbol]).fetchall()
    return [r[0] for r in rows]


def load_log(con: duckdb.DuckDBPyConnection, symbol: str, periods: list[str] | None = None) -> pl.DataFrame:
    """A symbol's stored forecast rows (of `periods`; None: all)."""
    if not table_exists(con, "forecast_log"):
        return pl.DataFrame()
    sql = "SELECT * FROM forecast_log WHERE symbol = ?"
    params: list = [symbol]
    if periods is not None:
        sql += f" AND period IN ({', '.join('?' * len(periods))})" if periods else " AND false"
        params += list(periods)
    return con.execute(sql + " ORDER BY period, origin_ts, name, quantity", params).pl()


def forecast_set_from_rows(rows: pl.DataFrame) -> tuple[ForecastSet, list[str]]:
    """The pooled ForecastSet of stored rows (fold i = the i-th period, oldest first), and the periods.
    Every forecaster present in all periods is kept (`ForecastSet.concat`)."""
    if rows.is_empty():
        raise ValueError("the forecast log holds no rows for these periods: backfill the forecast periods first")
    periods = sorted(rows["period"].unique().to_list())
    parts = []
    for fold, period in enumerate(periods, start=1):
        part = rows.filter(pl.col("period") == period)
        origins = np.sort(part["origin_ts"].unique().to_numpy().astype("datetime64[us]"))
        index = {o: i for i, o in enumerate(origins)}

        def column(name: str, quantity: str, part=part, origins=origins, index=index) -> np.ndarray | None:
            sel = part.filter((pl.col("name") == name) & (pl.col("quantity") == quantity))
            if sel.is_empty():
                return None
            out = np.full(len(origins), np.nan)
            at = [index[o] for o in sel["origin_ts"].to_numpy().astype("datetime64[us]")]
            out[at] = sel["value"].to_numpy()
            return out

        observed = {attr: column(OBSERVED, q) for attr, q in OBSERVED_ATTRIBUTES.items()}
        if any(v is None for v in observed.values()):
            raise ValueError(f"period {period}: the forecast log lacks the observed values; recompute the period")

        def stacked(name: str, quantities: tuple[str, ...], column=column) -> np.ndarray | None:
            cols = [column(name, q) for q in quantities]
            if any(c is None or np.isnan(c).any() for c in cols):
                return None
            return np.stack(cols, axis=1)  # type: ignore[arg-type]

        direction = column(OBSERVED, DIRECTION)
        fs = ForecastSet(
            end_ts=origins,
            fold=np.full(len(origins), fold),
            actual=observed["actual"],  # type: ignore[arg-type]
            train_mean=observed["train_mean"],  # type: ignore[arg-type]
            realised_var=observed["realised_var"],  # type: ignore[arg-type]
            direction=None if direction is None or np.isnan(direction).any() else direction.astype(np.int64),
            base_rates=stacked(OBSERVED, BASE_RATE_QUANTITIES),
        )
        names = part.filter(pl.col("name") != OBSERVED).select("name", "quantity").unique().sort("name", "quantity")
        for name, quantity in names.iter_rows():
            if quantity in PROBABILITY_QUANTITIES:
                probs = stacked(name, PROBABILITY_QUANTITIES) if name not in fs.probabilities else None
                if probs is not None:
                    fs.probabilities[name] = probs
                continue
            attr = next((a for a, q in ATTRIBUTES.items() if q == quantity), None)
            if attr is None:
                raise ValueError(f"period {period}: the forecast log holds an unknown quantity {quantity!r} of {name}")
            values = column(name, quantity)
            if values is not None and not np.isnan(values).any():
                getattr(fs, attr)[name] = values
        parts.append(fs)
    return ForecastSet.concat(parts), periods


def period_spans(con: duckdb.DuckDBPyConnection, symbol: str, periods: list[str]) -> tuple[list[FoldSpan], dict]:
    """FoldSpan per period (fold i = the i-th of `periods`) and the baseline errors, from `forecast_periods`."""
    spans, errors = [], {}
    for fold, period in enumerate(periods, start=1):
        row = con.execute(
            "SELECT test_start, test_end, train_windows, train_start, train_end, seconds, epochs, errors "
            "FROM forecast_periods WHERE symbol = ? AND period = ?",
            [symbol, period],
        ).fetchall()
        if not row:
            raise ValueError(f"period {period} of {symbol} has forecasts but no forecast_periods row: recompute it")
        start, end, windows, t0, t1, seconds, epochs, errs = row[0]
        spans.append(FoldSpan(fold, start, end, int(windows), t0, t1, float(seconds or 0), json.loads(epochs or "{}")))
        errors.update({f"{period} {k}": v for k, v in json.loads(errs or "{}").items()})
    return spans, errors


def pooled_evaluation(
    con: duckdb.DuckDBPyConnection, symbol: str, newest: int | None = None, profile: str | None = None
) -> Evaluation | None:
    """The walk-forward evidence: the stored forecasts of the newest `newest` periods (None: all), pooled and
    tested; trains and forecasts nothing. None when no period is stored."""
    periods = stored_periods(con, symbol)
    if newest:
        periods = periods[-newest:]
    if not periods:
        return None
    fs, periods = forecast_set_from_rows(load_log(con, symbol, periods))
    spans, errors = period_spans(con, symbol, periods)
    note = (
        f"walk-forward: the forecast log, {len(periods)} monthly periods ({periods[0][:7]} to {periods[-1][:7]}), "
        f"{len(fs):,} pooled test hours; every model and control trained once per period on hours before it "
        "(warm-started from the previous period's); a pseudo-out-of-sample reconstruction, its rows written once the "
        "outcome hours had landed, not a real-time record"
    )
    return evaluate_forecasts(fs, "walk_forward", note, spans, {"periods": periods, "profile": profile}, errors)


def interval_history(con: duckdb.DuckDBPyConnection, symbol: str, name: str) -> IntervalHistory | None:
    """`name`'s return forecasts, predictive variances and outcomes over the whole forecast log, pooled in time
    order as the report pools them (`forecast_set_from_rows`): the rows the served interval is calibrated on.
    None when the log holds no period or the kind has no variance in every period."""
    periods = stored_periods(con, symbol)
    rows = load_log(con, symbol, periods) if periods else pl.DataFrame()
    if rows.is_empty():
        return None
    fs, _ = forecast_set_from_rows(rows.filter(pl.col("name").is_in([name, OBSERVED])))
    if name not in fs.returns or name not in fs.variances:
        return None
    return IntervalHistory(name, fs.end_ts, fs.actual, fs.returns[name], fs.variances[name])
