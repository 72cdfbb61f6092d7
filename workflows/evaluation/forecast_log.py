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

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

import duckdb
import numpy as np
import polars as pl

from workflows.data.features import FEATURE_COLUMNS
from workflows.data.tables import add_missing_columns
from workflows.data.warehouse import Replacement, replace_table_slice, replace_together, table_exists
from workflows.evaluation.evidence import VOLATILITY_MODEL, Evaluation, FoldSpan, ForecastSet, evaluate_forecasts
from workflows.evaluation.forecast_set import forecast_set, model_forecasts, recalibrated
from workflows.evaluation.intervals import IntervalHistory
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


class StaleForecastError(RuntimeError):
    """A period model was trained on other data than the feature table holds before its period now."""


class IncompleteForecastError(RuntimeError):
    """A forecaster of a period lacks forecasts for origins every other forecaster of the period has, even after
    the period was recomputed."""


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
    # origins from this hour on (numpy datetime64[us]) are deleted and recomputed (an input correction); None: none
    redo_from: np.datetime64 | None = None
    stored_names: frozenset = field(default_factory=frozenset)  # forecasters with stored rows


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


@dataclass(frozen=True)
class PeriodForecasts:
    """`compute_period`'s result."""

    forecasts: ForecastSet | None  # None: nothing new
    span: FoldSpan  # the period's span (all its origins so far)
    errors: dict[str, str]  # forecasters that could not be fitted
    version: str  # the training slice's version
    origins: np.ndarray  # every origin of the period whose window and targets have landed (datetime64[us])


def compute_period(
    features: pl.DataFrame,
    checkpoints: dict[str, Checkpoint],
    period: ForecastPeriod,
    cfg: PeriodConfig,
    skip: frozenset = frozenset(),
) -> PeriodForecasts:
    """Every forecaster's forecasts for the period's test origins not in `skip`: the checkpoints' outputs, the
    ridge controls and the volatility baselines (fitted on the period's training slice), with the period's span
    (all its origins so far), the baselines' errors, the slice version and the origins the period has now."""
    datas, version = period_data(features, checkpoints, period, cfg)
    first = next(iter(datas.values()))
    origins = first.test.end_ts.astype("datetime64[us]")
    span = FoldSpan.of(first) if len(first.test) else FoldSpan(0, "", "", len(first.train), "", "")
    keep = ~np.isin(first.test.end_ts, np.array(sorted(skip), dtype=first.test.end_ts.dtype))
    if not keep.any():
        return PeriodForecasts(None, span, {}, version, origins)
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
    return PeriodForecasts(fs, span, errors | recal_errors, version, origins)


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


def recorded_forecasters(con: duckdb.DuckDBPyConnection, symbol: str, period: str) -> set[str]:
    """The forecasters the period's last write stored (empty for a row written before they were recorded)."""
    if not table_exists(con, "forecast_periods"):
        return set()
    add_missing_columns(con, "forecast_periods")
    row = con.execute(
        "SELECT forecasters FROM forecast_periods WHERE symbol = ? AND period = ?", [symbol, period]
    ).fetchone()
    return set(json.loads(row[0])) if row and row[0] else set()


def missing_forecasts(con: duckdb.DuckDBPyConnection, symbol: str, period: str) -> dict[str, list]:
    """forecaster -> the stored origins of the period (numpy datetime64[us], sorted) at which it lacks a quantity
    it holds at another origin, or lacks every row though the period's last write stored it."""
    if not table_exists(con, "forecast_log"):
        return {}
    rows = con.execute(
        """
        WITH log AS (SELECT name, quantity, origin_ts FROM forecast_log WHERE symbol = ? AND period = ?),
             pairs AS (SELECT DISTINCT name, quantity FROM log),
             origins AS (SELECT DISTINCT origin_ts FROM log)
        SELECT DISTINCT p.name, o.origin_ts FROM pairs AS p CROSS JOIN origins AS o
         WHERE NOT EXISTS (SELECT 1 FROM log AS l
                            WHERE l.name = p.name AND l.quantity = p.quantity AND l.origin_ts = o.origin_ts)
         ORDER BY 1, 2
        """,
        [symbol, period],
    ).fetchall()
    out: dict[str, list] = {}
    for name, origin in rows:
        out.setdefault(name, []).append(np.datetime64(origin, "us"))
    present = {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT name FROM forecast_log WHERE symbol = ? AND period = ?", [symbol, period]
        ).fetchall()
    }
    if present:
        every = sorted(
            {
                np.datetime64(r[0], "us")
                for r in con.execute(
                    "SELECT DISTINCT origin_ts FROM forecast_log WHERE symbol = ? AND period = ?", [symbol, period]
                ).fetchall()
            }
        )
        for name in sorted(recorded_forecasters(con, symbol, period) - present):
            out[name] = every
    return out


def plan_period(
    con: duckdb.DuckDBPyConnection, symbol: str, period: str, versions: ForecastVersions, models: set[str]
) -> PeriodPlan:
    """Which of a period's origins need forecasts: all when nothing is stored, a model of `models` (or a forecaster
    the last write stored) has no rows, or any stored row's versions differ from the current ones; else the
    origins not yet stored and those at which any forecaster lacks a row (`missing_forecasts`)."""
    stored = stored_versions(con, symbol, period)
    if not stored:
        return PeriodPlan(True, reason="nothing stored")

    def expected(name: str) -> tuple[str, str, str]:
        model = f"observed:{versions.data}" if name == OBSERVED else versions.model_version(name)
        return (model, versions.code, versions.data)

    changed = sorted({n for n in models if n not in stored} | {n for n, v in stored.items() if v != expected(n)})
    if changed:
        return PeriodPlan(True, reason=f"versions changed for {', '.join(changed)}")
    gone = sorted(recorded_forecasters(con, symbol, period) - set(stored))
    if gone:
        return PeriodPlan(True, reason=f"{', '.join(gone)} stored no rows of the period any more: recomputed")
    origins = con.execute(
        "SELECT DISTINCT origin_ts FROM forecast_log WHERE symbol = ? AND period = ?", [symbol, period]
    ).fetchall()
    stored_origins = frozenset(np.datetime64(o[0], "us") for o in origins)
    missing = missing_forecasts(con, symbol, period)
    holes = frozenset(o for origins in missing.values() for o in origins)
    reason = f"{len(stored_origins)} origins stored and current"
    if holes:
        names = ", ".join(f"{n} ({len(o)})" for n, o in missing.items())
        reason = f"{len(holes)} stored origin(s) lacked forecasts of {names}: recomputed"
    return PeriodPlan(False, stored_origins - holes, reason, stored_names=frozenset(stored))


def input_digests(features: pl.DataFrame, period: ForecastPeriod, spec: WindowSpec) -> pl.DataFrame:
    """One digest (sha256's first 8 bytes, signed) per feature hour from the period's first hour through its last
    origin's last target, over every column a forecast of the period reads (the features of every model, the
    returns and segments of the targets and baselines): equal digests, equal inputs."""
    end = period.end + timedelta(hours=spec.vol_horizon)
    rows = features.filter((pl.col("ts") >= period.start) & (pl.col("ts") < end)).sort("ts")
    columns = [
        c for c in dict.fromkeys(["segment", "log_return", *FEATURE_COLUMNS, *spec.features]) if c in rows.columns
    ]
    ts = rows["ts"].dt.epoch("us").to_numpy().astype(np.int64)
    values = (
        np.column_stack([ts.astype(np.float64)] + [rows[c].cast(pl.Float64).to_numpy() for c in columns])
        if rows.height
        else np.empty((0, 1))
    )
    digests = [
        int.from_bytes(hashlib.sha256(np.ascontiguousarray(v).tobytes()).digest()[:8], "big", signed=True)
        for v in values
    ]
    return pl.DataFrame({"ts": ts.astype("datetime64[us]"), "digest": pl.Series(digests, dtype=pl.Int64)})


def check_inputs(
    con: duckdb.DuckDBPyConnection,
    symbol: str,
    period: ForecastPeriod,
    digests: pl.DataFrame,
    spec: WindowSpec,
    plan: PeriodPlan,
) -> PeriodPlan | None:
    """The inputs the stored forecasts read against the feature rows landed now (`input_digests`): a corrected,
    removed or filled-in hour h (inside the period, or in the hours after it that its last targets read) changes
    the forecasts and outcomes of every origin from h - vol_horizon on, which are recomputed. None: the period
    has no recorded digests (written before they were), so only its outcomes can be compared."""
    if not plan.stored or not table_exists(con, "forecast_inputs"):
        return None if plan.stored else plan
    stored = con.execute(
        "SELECT ts, digest FROM forecast_inputs WHERE symbol = ? AND period = ?", [symbol, period.key]
    ).pl()
    if stored.is_empty():
        return None
    stored = stored.with_columns(pl.col("ts").cast(pl.Datetime("us")))
    last = stored["ts"].max()
    now = digests.with_columns(pl.col("ts").cast(pl.Datetime("us"))).filter(pl.col("ts") <= last)
    both = stored.join(now, on="ts", how="full", suffix="_now", coalesce=True)
    changed = both.filter(pl.col("digest").ne_missing(pl.col("digest_now")))["ts"]
    if changed.is_empty():
        return plan
    first: datetime = changed.sort()[0]
    redo = np.datetime64(first, "us") - np.timedelta64(spec.vol_horizon, "h")
    kept = frozenset(o for o in plan.stored if o < redo)
    return PeriodPlan(
        False,
        kept,
        f"the inputs of {changed.len()} hour(s) changed after the period was logged (first "
        f"{first:%Y-%m-%d %H:%M} UTC): origins from {str(redo)[:16].replace('T', ' ')} UTC recomputed",
        redo,
        plan.stored_names,
    )


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
    expected_hours: int = 0  # origins of the period whose windows and targets have landed
    closed: bool = False  # the period is over and its last origin's targets have landed
    waiting_for: str = ""  # while not closed: the last target hour the period still waits for (UTC)

    @property
    def complete(self) -> bool:
        """Every origin of the period with a landed target is stored, and no target is still to land."""
        return self.closed and self.test_hours == self.expected_hours


def update_period(
    con: duckdb.DuckDBPyConnection,
    features: pl.DataFrame,
    symbol: str,
    period: ForecastPeriod,
    checkpoints: dict[str, Checkpoint],
    cfg: PeriodConfig,
    code_version: str = FORECAST_CODE_VERSION,
    recompute: bool = False,
) -> PeriodUpdate:
    """Bring one period's stored forecasts up to date with its models and the hours landed so far: compute
    only what is missing or stale (`plan_period`, `check_inputs`), write it with its period row and input
    digests in one transaction. A forecaster still lacking origins afterwards gets the period recomputed once
    (`recompute`), then an `IncompleteForecastError` naming it and the month."""
    shas = {name: ckpt.sha256 for name, ckpt in checkpoints.items()}
    data_version = "+".join(sorted({c.data_version for c in checkpoints.values()}))
    versions = ForecastVersions(shas, code_version, data_version)
    spec = spec_of(next(iter(checkpoints.values())))
    digests = input_digests(features, period, spec)
    plan = PeriodPlan(True, reason="recomputed: forecasts were missing") if recompute else None
    plan = plan or plan_period(con, symbol, period.key, versions, set(checkpoints))
    if not plan.recompute:
        checked = check_inputs(con, symbol, period, digests, spec, plan)
        plan = checked or check_outcomes(con, symbol, period, features, checkpoints, cfg, data_version, plan)
    out = compute_period(features, checkpoints, period, cfg, frozenset() if plan.recompute else plan.stored)
    assert out.version == data_version, (out.version, data_version)
    epochs = {name: int(c.training.epochs_run) for name, c in checkpoints.items()}
    span = replace(out.span, seconds=float(sum(c.training.wall_s or 0.0 for c in checkpoints.values())), epochs=epochs)
    fs = out.forecasts
    rows = None if fs is None else forecast_rows(symbol, period.key, fs, versions)
    names = set() if rows is None else set(rows["name"].unique())
    info = {"errors": out.errors, "models": shas, "code_version": code_version, "data_version": data_version}
    info["forecasters"] = sorted(names if plan.recompute else names | plan.stored_names)
    deleted, hours = write_period(con, symbol, period.key, rows, plan, span, info, digests)
    missing = missing_forecasts(con, symbol, period.key)
    if missing and not plan.recompute:
        return update_period(con, features, symbol, period, checkpoints, cfg, code_version, recompute=True)
    if missing:
        name, origins = next(iter(missing.items()))
        raise IncompleteForecastError(
            f"{symbol} {period}: the forecaster {name} has no forecasts for {len(origins)} of the month's "
            f"{hours} stored origins (first {str(origins[0])[:16].replace('T', ' ')} UTC) even after the month was "
            f"recomputed{'; also ' + ', '.join(list(missing)[1:]) if len(missing) > 1 else ''}; the errors "
            f"recorded for it: {out.errors.get(name, 'none')}. Rematerialise the forecasts of partition "
            f"{period.key} after fixing that forecaster"
        )
    last_target = period.end + timedelta(hours=spec.vol_horizon - 1)
    closed = bool(features.height) and bool((features["ts"] >= last_target).any())
    return PeriodUpdate(
        period.key,
        plan.recompute,
        plan.reason,
        0 if fs is None else len(fs),
        0 if rows is None else rows.height,
        deleted,
        hours,
        out.errors,
        len(out.origins),
        closed,
        "" if closed else f"{last_target:%Y-%m-%d %H:%M} UTC",
    )


def write_period(
    con: duckdb.DuckDBPyConnection,
    symbol: str,
    period: str,
    rows: pl.DataFrame | None,
    plan: PeriodPlan,
    span: FoldSpan,
    info: dict,
    digests: pl.DataFrame | None = None,
) -> tuple[int, int]:
    """Store a period's new rows (all of the period's when `plan.recompute`, else the rows' origins and those from
    `plan.redo_from` on are replaced), its period row and its input digests, in ONE transaction: a crash leaves
    the log, `forecast_periods` and `forecast_inputs` all as they were or all written. Returns the log rows
    deleted and the origins stored after the write."""
    origins = set() if rows is None else {np.datetime64(o, "us") for o in rows["origin_ts"].unique().to_list()}
    if not plan.recompute and table_exists(con, "forecast_log"):
        kept = con.execute(
            "SELECT DISTINCT origin_ts FROM forecast_log WHERE symbol = ? AND period = ?", [symbol, period]
        ).fetchall()
        redo = plan.redo_from
        origins |= {o for o in (np.datetime64(k[0], "us") for k in kept) if redo is None or o < redo}
    where, params = "symbol = ? AND period = ?", [symbol, period]
    if not plan.recompute:
        where += " AND (origin_ts IN (SELECT DISTINCT origin_ts FROM staged_rows)"
        where += " OR origin_ts >= ?)" if plan.redo_from is not None else ")"
        if plan.redo_from is not None:
            params = [*params, plan.redo_from.astype(datetime)]
        if rows is None:  # nothing staged: only the origins from `redo_from` on go
            where = "symbol = ? AND period = ? AND " + ("origin_ts >= ?" if plan.redo_from is not None else "false")
    row = {
        "symbol": symbol,
        "period": period,
        "test_start": span.test_start,
        "test_end": span.test_end,
        "test_hours": len(origins),
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
        "forecasters": json.dumps(info.get("forecasters", [])),
    }
    key = "symbol = ? AND period = ?"
    parts = [
        Replacement("forecast_log", where, params, rows if rows is not None else pl.DataFrame()),
        Replacement("forecast_periods", key, [symbol, period], pl.DataFrame([row])),
    ]
    if digests is not None:
        inputs = digests.with_columns(pl.lit(symbol).alias("symbol"), pl.lit(period).alias("period"))
        parts.append(Replacement("forecast_inputs", key, [symbol, period], inputs))
    deleted = replace_together(con, parts)[0]
    return deleted, len(origins)


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
    """The evaluation's evidence: the stored forecasts of the newest `newest` periods (None: all), pooled and
    tested; trains and forecasts nothing. None when no period is stored."""
    periods = stored_periods(con, symbol)
    if newest:
        periods = periods[-newest:]
    if not periods:
        return None
    fs, periods = forecast_set_from_rows(load_log(con, symbol, periods))
    spans, errors = period_spans(con, symbol, periods)
    note = (
        f"the forecast log, {len(periods)} monthly periods ({periods[0][:7]} to {periods[-1][:7]}), "
        f"{len(fs):,} pooled test hours; every model and control trained once per period on hours before it "
        "(warm-started from the previous period's); a pseudo-out-of-sample reconstruction, its rows written once the "
        "outcome hours had landed, not a real-time record"
    )
    return evaluate_forecasts(fs, note, spans, {"periods": periods, "profile": profile}, errors)


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


def store_evaluation(con: duckdb.DuckDBPyConnection, symbol: str, ev: Evaluation) -> None:
    """Replace the symbol's rows of the `evaluation` table by every figure of `ev` (`Evaluation.rows`)."""
    stamp = datetime.now(timezone.utc).replace(tzinfo=None)
    rows = pl.DataFrame(
        [{"symbol": symbol, "model": m, "metric": k, "value": float(v), "evaluated_at": stamp} for m, k, v in ev.rows()]
    )
    replace_table_slice(con, "evaluation", symbol, rows)


def comparisons_frame(ev: Evaluation) -> pl.DataFrame:
    """The family of comparisons as a table, by Holm-adjusted p (the evaluation asset's metadata)."""
    rows = [
        {"comparison": f"{c.model} vs {c.baseline}", "loss": c.loss, "skill": c.skill, "p": c.dm.p_better}
        | {"p_holm": c.p_holm}
        for c in ev.family
    ]
    return pl.DataFrame(rows).sort("p_holm")
