"""The served-forecast record: every forecast `latest_forecast` served, and how it fared once its hour landed.

`served_row` turns a served forecast (`forecast_next_hour`) into a row of the append-only
`served_forecasts` table (data/warehouse.py); `served_figures` joins the record with the
outcomes the features hold (the log return of each forecast hour) and judges it as the gate
judges a candidate: coverage of the 80% and 95% intervals with Kupiec's and Christoffersen's
tests (Monte Carlo p-values), their interval scores, and the Brier score of the direction
probabilities against the base rate of the same hours; the tests are one Holm family.
Hours of the record need not be consecutive (the asset may not run every hour): the
independence test then reads misses in the order they were served.
"""

from dataclasses import dataclass, replace
from datetime import datetime, timezone

import numpy as np
import polars as pl

from workflows.ml.windows import direction_classes
from workflows.records import to_record
from workflows.serving.served_calibration import direction_check
from workflows.stats.calibration import (
    SdBinCoverage,
    coverage_by_sd,
    coverage_test_mc,
    holds_at_low_and_high_sd,
    interval_score,
)
from workflows.stats.significance import holm

MIN_JUDGED = 20  # fewer served hours with an outcome than this: figures are shown, no test is run


@dataclass(frozen=True)
class ServedForecast:
    """One next-hour forecast as `promotion.forecast_next_hour` makes it: for which hour, from which candle and
    model, the return, and (when the model gives them) its sd, 80% / 95% conformal intervals and direction
    probabilities, all in percent. Stored through `workflows.records` (`to_record`: times as ISO 8601)."""

    as_of_candle: datetime  # the newest candle the window ends with (UTC)
    forecast_hour: datetime  # the hour forecast: the one after `as_of_candle`
    model: str  # the checkpoint's file name, or the zero-return forecast's description
    return_pct: float
    checkpoint_sha256: str | None = None
    direction_threshold_pct: float | None = None
    interval_80_pct: tuple[float, float] | None = None
    interval_95_pct: tuple[float, float] | None = None
    sd_pct: float | None = None
    interval_calibration: str | None = None  # how the intervals were found, or why none is served
    conformal_state: str | None = None  # the forecast-log hours the conformal state rests on
    direction_probabilities: dict[str, float] | None = None  # DOWN / STABLE / UP

    def metadata(self) -> dict[str, str | float]:
        """Its fields as Dagster metadata values: numbers and strings as they are, the rest as text."""
        return {k: v if isinstance(v, str | int | float) else str(v) for k, v in to_record(self).items()}


def served_row(symbol: str, forecast: ServedForecast, served_at: datetime | None = None) -> dict:
    """One `served_forecasts` row from a `forecast_next_hour` result."""
    lo80, hi80 = forecast.interval_80_pct or (None, None)
    lo95, hi95 = forecast.interval_95_pct or (None, None)
    probs = forecast.direction_probabilities or {}
    return {
        "symbol": symbol,
        "forecast_hour": forecast.forecast_hour,
        "as_of_candle": forecast.as_of_candle,
        "served_at": served_at or datetime.now(timezone.utc),
        "model": forecast.model,
        "checkpoint_sha256": forecast.checkpoint_sha256,
        "return_pct": forecast.return_pct,
        "lo80_pct": lo80,
        "hi80_pct": hi80,
        "lo95_pct": lo95,
        "hi95_pct": hi95,
        "p_down": probs.get("DOWN"),
        "p_stable": probs.get("STABLE"),
        "p_up": probs.get("UP"),
        "direction_threshold_pct": forecast.direction_threshold_pct,
        "conformal_state": forecast.conformal_state,
        "sd_pct": forecast.sd_pct,
    }


@dataclass(frozen=True)
class ServedIntervals:
    level: float
    hours: int
    coverage: float
    interval_score_pct: float  # Gneiting-Raftery, percent log-return units (lower is better)
    kupiec_p: float | None  # Monte Carlo; None below MIN_JUDGED hours
    christoffersen_p: float | None
    # coverage and interval score by deciles of the served sd (rows that record it; bins under 20 hours left out)
    by_sd: tuple[SdBinCoverage, ...] = ()

    @property
    def holds_at_low_and_high_sd(self) -> bool | None:
        """Coverage holds in the lowest and the highest sd decile (None: too few hours to tell)."""
        return holds_at_low_and_high_sd(list(self.by_sd)) if len(self.by_sd) >= 2 else None


@dataclass(frozen=True)
class ServedFigures:
    """How the served forecasts fared on the hours whose outcome has landed."""

    served: int  # rows in the record
    with_outcome: int  # of them, hours whose log return the features hold
    first_hour: str | None
    last_hour: str | None
    rmse_pct: float | None
    intervals: dict[int, ServedIntervals]  # by percent level, over the hours that served that interval
    brier: float | None = None
    brier_base_rate: float | None = None
    p_base_rate_better: float | None = None
    holm: dict[str, float] | None = None  # the tests' Holm-adjusted p-values, one family


def outcomes(served: pl.DataFrame, features: pl.DataFrame) -> pl.DataFrame:
    """The served rows whose forecast hour has landed, with its log return in percent (`actual_pct`)."""
    actual = features.select(pl.col("ts").alias("forecast_hour"), (100 * pl.col("log_return")).alias("actual_pct"))
    joined = served.join(actual, on="forecast_hour", how="inner").sort("forecast_hour")
    return joined.filter(pl.col("actual_pct").is_not_null())


def served_figures(served: pl.DataFrame, features: pl.DataFrame) -> ServedFigures:
    """Coverage, interval score and Brier of the served record on the hours that have landed, with their tests."""
    done = outcomes(served, features)
    n = done.height
    hours = done["forecast_hour"].dt.strftime("%Y-%m-%dT%H:%M").to_list() if n else []
    y = done["actual_pct"].to_numpy() if n else np.zeros(0)
    intervals: dict[int, ServedIntervals] = {}
    raw: dict[str, float] = {}
    for pct in (80, 95):
        rows = done.filter(pl.col(f"lo{pct}_pct").is_not_null()) if n else done
        if rows.is_empty():
            continue
        r, lo, hi = (rows[c].to_numpy() for c in ("actual_pct", f"lo{pct}_pct", f"hi{pct}_pct"))
        miss = (r < lo) | (r > hi)
        test = coverage_test_mc(miss, pct / 100, seed=pct) if len(r) >= MIN_JUDGED else None
        intervals[pct] = ServedIntervals(
            level=pct / 100,
            hours=len(r),
            coverage=float(1 - miss.mean()),
            interval_score_pct=interval_score(r, lo, hi, 1 - pct / 100),
            kupiec_p=test.kupiec_p if test else None,
            christoffersen_p=test.independence_p if test else None,
        )
        with_sd = rows.filter(pl.col("sd_pct").is_not_null()) if "sd_pct" in rows.columns else rows.clear()
        by_sd = ()
        if not with_sd.is_empty():
            r_sd, lo_sd, hi_sd, sd = (
                with_sd[c].to_numpy() for c in ("actual_pct", f"lo{pct}_pct", f"hi{pct}_pct", "sd_pct")
            )
            by_sd = tuple(coverage_by_sd(r_sd, lo_sd, hi_sd, sd, pct / 100))
        intervals[pct] = replace(intervals[pct], by_sd=by_sd)
        if test:
            raw[f"kupiec_{pct}"], raw[f"christoffersen_{pct}"] = test.kupiec_p, test.independence_p
    extra: dict = {}
    probs_rows = done.filter(pl.col("p_down").is_not_null()) if n else done
    if probs_rows.height >= MIN_JUDGED:
        p = probs_rows.select("p_down", "p_stable", "p_up").to_numpy()
        classes = direction_classes(
            probs_rows["actual_pct"].to_numpy(), float(probs_rows["direction_threshold_pct"][0])
        )
        check = direction_check(p, classes)
        extra = {
            "brier": check.brier,
            "brier_base_rate": check.base_rate_brier,
            "p_base_rate_better": check.p_base_rate_better,
        }
        raw["brier"] = check.p_base_rate_better
    return ServedFigures(
        served=served.height,
        with_outcome=n,
        first_hour=hours[0] if hours else None,
        last_hour=hours[-1] if hours else None,
        rmse_pct=float(np.sqrt(np.mean((done["return_pct"].to_numpy() - y) ** 2))) if n else None,
        intervals=intervals,
        holm=dict(zip(raw, holm(list(raw.values())).tolist())) if raw else None,
        **extra,
    )


def served_metadata(figures: ServedFigures) -> dict:
    """The served record's figures as flat metadata values (the UI plots each one over materializations)."""
    meta: dict = {"served_record_rows": figures.served, "served_hours_with_outcome": figures.with_outcome}
    for pct, c in figures.intervals.items():
        meta |= {
            f"served_coverage_{pct}": c.coverage,
            f"served_interval_score_{pct}_pct": c.interval_score_pct,
            f"served_kupiec_p_{pct}": c.kupiec_p,
            f"served_christoffersen_p_{pct}": c.christoffersen_p,
        }
    meta |= {"served_brier": figures.brier, "served_brier_base_rate": figures.brier_base_rate}
    return {k: v for k, v in meta.items() if v is not None}


SERVED_RECORD = "served_record.md"  # beside the report: how the served forecasts fared, next to the backtest


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def served_record_markdown(symbol: str, figures: ServedFigures, backtest: dict | None) -> str:
    """The served record against the backtest the serving model was promoted on (its gate decision's figures:
    coverage of the same conformal intervals and Brier score on its evidence hours)."""
    f, b = figures, backtest or {}
    span = f"{f.first_hour} .. {f.last_hour}" if f.first_hour else "none yet"
    lines = [
        f"# Served forecasts: {symbol}",
        "",
        f"{f.served} forecasts served (table `served_forecasts`), {f.with_outcome} with their outcome landed "
        f"({span}). Tests: Kupiec and Christoffersen with Monte Carlo p-values and the Brier test against the "
        f"same hours' base rate, Holm-adjusted as one family (p_holm); none below {MIN_JUDGED} hours. Backtest: "
        "the figures of the gate decision that promoted the serving model, on its evidence hours.",
        "",
        "| figure | served | p | p_holm | backtest |",
        "| --- | --- | --- | --- | --- |",
    ]
    holm_p = f.holm or {}
    for pct in (80, 95):
        c = f.intervals.get(pct)
        cov = f"{c.coverage:.1%} of {c.hours}" if c else "n/a"
        back = b.get(f"coverage_{pct}")
        lines += [
            f"| {pct}% coverage | {cov} | Kupiec {_p(c.kupiec_p if c else None)}, Christoffersen "
            f"{_p(c.christoffersen_p if c else None)} | {_p(holm_p.get(f'kupiec_{pct}'))}, "
            f"{_p(holm_p.get(f'christoffersen_{pct}'))} | {'n/a' if back is None else f'{back:.1%}'} |",
            f"| {pct}% interval score (pct) | {'n/a' if c is None else f'{c.interval_score_pct:.4g}'} | | | |",
        ]
    brier_back, base_back = b.get("brier"), b.get("brier_base_rate")
    back_text = "n/a" if brier_back is None or base_back is None else f"{brier_back:.4f} ({base_back:.4f})"
    lines.append(
        f"| Brier (base rate) | {'n/a' if f.brier is None else f'{f.brier:.4f} ({f.brier_base_rate:.4f})'} | "
        f"{_p(f.p_base_rate_better)} | {_p(holm_p.get('brier'))} | "
        f"{back_text} |"
    )
    return "\n".join(lines + _by_sd_lines(f)) + "\n"


def _by_sd_lines(f: ServedFigures) -> list[str]:
    """The served intervals' coverage and interval score by deciles of the served sd (`coverage_by_sd`)."""
    rows = [(pct, b) for pct, c in f.intervals.items() for b in c.by_sd]
    if not rows:
        return ["", "Coverage by deciles of the served sd: none yet (no served hour with its sd and outcome)."]
    lines = [
        "",
        "Coverage by deciles of the served model's predictive sd (bins of at least 20 hours; Kupiec p, "
        "asymptotic, per bin): an interval at nominal coverage on average can still miss too often where the "
        "sd is low or high.",
        "",
        "| level | decile | sd (pct) | hours | coverage | Kupiec p | interval score (pct) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {pct}% | {b.bin} | {b.sd_low:.3g} .. {b.sd_high:.3g} | {b.n} | {b.observed:.1%} | {_p(b.kupiec_p)} | "
        f"{b.interval_score:.4g} |"
        for pct, b in rows
    ]
    for pct, c in f.intervals.items():
        holds = c.holds_at_low_and_high_sd
        verdict = (
            "too few hours to tell"
            if holds is None
            else ("holds" if holds else "does not hold (Kupiec rejects in the lowest or the highest decile)")
        )
        lines.append(f"\n{pct}%: coverage in the lowest and the highest sd decile {verdict}.")
    return lines
