"""The forecast log's cost: the first backfill of the forecast periods, then the daily work after 24 new hours.

Through the same Dagster jobs `workflows run` uses (in process): land the candles and
build the features, run `forecast_period` for each month the history allows (oldest
first: every model and no-attention twin trained once per month, warm-started from the
previous month's, then every forecaster's forecasts stored), then land 24 more hours
and run the current month again (what the 01:30 schedule does). Wall time and the
process's CPU time (user + system, this process and its threads) of each part, the
trainings counted from the model assets' `trained` metadata.

    .venv/bin/python -m benchmarks.forecast_log [--file ../shared/data/Binance_BTCUSDT_1h.csv]
        [--days 200] [--periods 3] [--profile ci] [--daily newest|month] [--write]

`--daily month` (a day that costs a day, issue 28): the history is cut so that the newest month has 14 days, the
first run is timed on it, then three daily runs of that month (its `forecast_period` partition and the
`refresh_report` job): the 15th day (mid-month: the month's attention evidence appended, its nulls kept), the 16
days up to the month's last (a catch-up, timed but not a day), and the day that closes the month (its last logged
hours, whose targets are the next month's first day: appended, the month's nulls redrawn).

The evaluation, attention analysis and report are not part of either figure (they
run on the stored forecasts; see docs/benchmarks.md's full-run section).
"""

import argparse
import os
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine, write_section  # noqa: E402


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file", default=None, help="a candle file (default: synthetic candles)")
    parser.add_argument("--days", type=int, default=200, help="the newest N days of the file (or synthetic days)")
    parser.add_argument("--periods", type=int, default=3, help="the newest N months the history allows")
    parser.add_argument("--profile", default="ci", help="training profile (ci | cpu | full)")
    parser.add_argument("--min-train-days", type=int, default=60)
    parser.add_argument("--daily", choices=("newest", "month"), default="newest", help="which daily runs (docstring)")
    parser.add_argument("--write", action="store_true", help="write the figures into docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.daily == "month":
        return month_days(args)

    tmp = private_folders()

    import dagster as dg

    from workflows.data.sources.files import read_candle_file
    from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
    from workflows.data.warehouse import ensure_schema, load_features, upsert_candles
    from workflows.definitions import defs
    from workflows.defs.assets_periods import PERIOD_KINDS
    from workflows.defs.partitions import period_key
    from workflows.ml.periods import PeriodConfig, trainable_periods
    from workflows.ml.windows import WindowSpec

    if args.file:
        candles = read_candle_file(Path(args.file)).candles.sort("ts")
        source = f"{Path(args.file).name}, its newest {args.days} days"
    else:
        candles = generate_candles(SyntheticSpec(days=args.days + 1, seed=7))
        source = f"synthetic candles, {args.days} days"
    newest = candles["ts"].max()
    assert isinstance(newest, datetime)
    candles = candles.filter(pl.col("ts") > newest - timedelta(days=args.days))
    symbol = candles["symbol"][0]
    last_day = candles.filter(pl.col("ts") > newest - timedelta(hours=24))
    first = candles.filter(pl.col("ts") <= newest - timedelta(hours=24))
    data = tmp / "data"
    data.mkdir()
    resources = {"resources": {"warehouse": {"config": {"data_dir": str(data)}}}}
    settings = {"profile": args.profile, "device": "cpu", "min_train_days": args.min_train_days}
    ops = {f"{k}_period_model": {"config": settings} for k in PERIOD_KINDS}

    with dg.instance_for_test(temp_dir=str(tmp / "dagster_home")) as instance:
        instance.add_dynamic_partitions("symbols", [symbol])

        def land(frame: pl.DataFrame) -> None:
            with duckdb.connect(str(data / "warehouse.duckdb")) as con:
                ensure_schema(con)
                upsert_candles(con, frame, "benchmark")
            result = defs.resolve_job_def("ingest").execute_in_process(
                instance=instance, partition_key=symbol, asset_selection=[dg.AssetKey("features")], run_config=resources
            )
            assert result.success

        def period(key: str) -> tuple[int, int]:
            result = defs.resolve_job_def("forecast_period").execute_in_process(
                instance=instance, partition_key=period_key(symbol, key), run_config={"ops": ops} | resources
            )
            assert result.success
            trained = sum(
                result.asset_materializations_for_node(f"{k}_period_model")[-1].metadata["trained"].value is True
                for k in PERIOD_KINDS
            )
            added = result.asset_materializations_for_node("forecasts")[-1].metadata["hours_added"].value
            assert isinstance(added, int)
            attention = result.asset_materializations_for_node("period_attention")[-1].metadata
            controls = attention["controls_trained"].value if "controls_trained" in attention else 0
            assert isinstance(controls, int)
            return trained + controls, added

        def analysis() -> None:
            """The daily report (`refresh_report`): the model assets (the newest period's models: nothing trains), the
            evaluation re-pooling the log, the pooled attention analysis, the report, the gate and the forecast."""
            result = defs.resolve_job_def("refresh_report").execute_in_process(
                instance=instance, partition_key=symbol, run_config=resources
            )
            assert result.success

        t0, c0 = time.perf_counter(), cpu_s()
        land(first)
        with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
            table, _ = load_features(con, symbol)
        cfg = PeriodConfig(min_train_days=args.min_train_days)
        periods = [p.key for p in trainable_periods(table, WindowSpec(), cfg, max_periods=args.periods)]
        trained = hours = 0
        for key in periods:
            t, h = period(key)
            trained, hours = trained + t, hours + h
            print(f"{key}: {t} trainings, {h} hours forecast ({time.perf_counter() - t0:.0f} s so far)")
        analysis()
        full_wall, full_cpu = time.perf_counter() - t0, cpu_s() - c0

        t1, c1 = time.perf_counter(), cpu_s()
        land(last_day)
        day_trained, day_hours = period(periods[-1])
        analysis()
        day_wall, day_cpu = time.perf_counter() - t1, cpu_s() - c1
    print(f"first run: {full_wall:.0f} s wall, {full_cpu:.0f} s CPU, {trained} trainings, {hours} hours")
    print(f"24 new hours: {day_wall:.1f} s wall, {day_cpu:.1f} s CPU, {day_trained} trainings, {day_hours} hours")

    load = os.getloadavg()[0]
    body = (
        f"Measured with `python -m benchmarks.forecast_log --days {args.days} --periods {args.periods} "
        f"--profile {args.profile} --min-train-days {args.min_train_days}"
        f"{' --file ' + Path(args.file).name if args.file else ''}` on {machine()}; "
        f"1-minute load average at the end {load:.1f} (a shared machine: wall times are inflated by the other "
        f"processes, CPU times much less). Data: {source}; {len(periods)} monthly periods ({periods[0][:7]} to "
        f"{periods[-1][:7]}), all six model kinds and their no-attention twins per period, profile `{args.profile}`, "
        "the ridge controls and six volatility baselines per period, each period's attention analysis (its "
        "shuffled-target controls trained once per period and architecture: counted as trainings), then the "
        "`refresh_report` job (the model assets point at the newest period's models, the evaluation re-pools the "
        "log, the attention analysis pools the periods, report, gate, forecast).\n\n"
        "| | wall | CPU (user + system) | trainings | hours forecast |\n"
        "| --- | ---: | ---: | ---: | ---: |\n"
        f"| first run: features, every period's models, forecasts and attention, then the `refresh_report` job "
        f"| {full_wall:.0f} s | {full_cpu:.0f} s | {trained} | {hours:,} |\n"
        f"| 24 new hours: features, the current period again, the `refresh_report` job | {day_wall:.1f} s "
        f"| {day_cpu:.1f} s "
        f"| {day_trained} | {day_hours} |\n"
        f"| ratio (daily / first) | {day_wall / full_wall:.1%} | {day_cpu / full_cpu:.1%} | | |"
    )
    if args.write:
        write_section(ROOT / "docs" / "benchmarks.md", "forecast-log", "Forecast log: first run and daily work", body)
    else:
        print(body)
    return 0


def private_folders() -> Path:
    """A fresh folder for this run's Dagster home, data and training-slot locks (exported to the environment): the
    figures are this run's work, not a wait for other processes' trainings."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-forecast-log-"))
    os.environ["DAGSTER_HOME"] = str(tmp / "dagster_home")
    os.environ["WORKFLOWS_DATA_DIR"] = str(tmp / "data")
    os.environ["WORKFLOWS_DEVICE_LOCK_DIR"] = str(tmp / "device_locks")
    (tmp / "dagster_home").mkdir()
    return tmp


def month_days(args) -> int:
    """`--daily month`: the first run on a month's first 14 days, then its 15th day, the catch-up to its last day,
    and the day that closes it (module docstring)."""
    tmp = private_folders()

    import dagster as dg

    from workflows.data.sources.files import read_candle_file
    from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
    from workflows.data.warehouse import ensure_schema, load_features, upsert_candles
    from workflows.definitions import defs
    from workflows.defs.assets_periods import PERIOD_KINDS
    from workflows.defs.partitions import period_key
    from workflows.ml.periods import ForecastPeriod, PeriodConfig, trainable_periods
    from workflows.ml.windows import WindowSpec

    if args.file:
        candles = read_candle_file(Path(args.file)).candles.sort("ts")
        newest = candles["ts"].max()
        assert isinstance(newest, datetime)
        close = ForecastPeriod.of(newest - timedelta(hours=23)).start + timedelta(days=1)
        source = f"{Path(args.file).name}, {args.days} days to {close:%Y-%m-%d}"
    else:
        close = datetime(2026, 1, 2, tzinfo=timezone.utc)
        candles = generate_candles(SyntheticSpec(days=args.days + 1, seed=7, end=close))
        source = f"synthetic candles, {args.days} days to {close:%Y-%m-%d}"
    month = ForecastPeriod.of(close - timedelta(days=2))
    candles = candles.filter((pl.col("ts") < close) & (pl.col("ts") >= close - timedelta(days=args.days)))
    symbol = candles["symbol"][0]
    mid, last = month.start + timedelta(days=14), close - timedelta(days=1)
    stages = {
        "first": candles.filter(pl.col("ts") < mid),
        "mid": candles.filter((pl.col("ts") >= mid) & (pl.col("ts") < mid + timedelta(days=1))),
        "catch-up": candles.filter((pl.col("ts") >= mid + timedelta(days=1)) & (pl.col("ts") < last)),
        "last": candles.filter(pl.col("ts") >= last),
    }
    data = tmp / "data"
    data.mkdir()
    resources = {"resources": {"warehouse": {"config": {"data_dir": str(data)}}}}
    settings = {"profile": args.profile, "device": "cpu", "min_train_days": args.min_train_days}
    ops = {f"{k}_period_model": {"config": settings} for k in PERIOD_KINDS}
    figures: dict[str, dict] = {}

    with dg.instance_for_test(temp_dir=str(tmp / "dagster_home")) as instance:
        instance.add_dynamic_partitions("symbols", [symbol])

        def run(job: str, partition, **kw):
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance, partition_key=partition, run_config=kw.pop("run_config", resources), **kw
            )
            assert result.success
            return result

        def trainable() -> list[str]:
            with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
                table, _ = load_features(con, symbol)
            cfg = PeriodConfig(min_train_days=args.min_train_days)
            return [p.key for p in trainable_periods(table, WindowSpec(), cfg, max_periods=args.periods)]

        def stage(name: str, which) -> list[str]:
            t0, c0 = time.perf_counter(), cpu_s()
            with duckdb.connect(str(data / "warehouse.duckdb")) as con:
                ensure_schema(con)
                upsert_candles(con, stages[name], "benchmark")
            run("ingest", symbol, asset_selection=[dg.AssetKey("features")])
            periods = which()
            t1, c1 = time.perf_counter(), cpu_s()
            attention: dict = {}
            for key in periods:
                result = run("forecast_period", period_key(symbol, key), run_config={"ops": ops} | resources)
                meta = result.asset_materializations_for_node("period_attention")[-1].metadata
                attention = {k: v.value for k, v in meta.items() if k in ("windows", "appended", "nulls_redrawn")}
            t2, c2 = time.perf_counter(), cpu_s()
            run("refresh_report", symbol)
            t3, c3 = time.perf_counter(), cpu_s()
            figures[name] = {
                "wall": t3 - t0,
                "cpu": c3 - c0,
                "periods_wall": t2 - t1,
                "periods_cpu": c2 - c1,
                "report_wall": t3 - t2,
                "report_cpu": c3 - c2,
                **attention,
            }
            print(name, figures[name], flush=True)
            return periods

        periods = stage("first", trainable)
        assert periods[-1] == month.key, (periods, month)
        for name in ("mid", "catch-up", "last"):
            stage(name, lambda: [month.key])

    load = os.getloadavg()[0]
    first = figures["first"]
    labels = {
        "first": f"first run: {len(periods)} months ({periods[0][:7]} to {month}, the last one's first 14 days)",
        "mid": f"day 15 of {month}: 24 new hours",
        "catch-up": "catch-up: days 16 to the month's last (not a day: the weekly null redraw falls in it)",
        "last": f"the day that closes {month}: its last 24 logged hours",
    }
    lines = [
        "| run | wall | CPU | of the first run's CPU | the month's job: wall / CPU | `refresh_report`: wall / CPU "
        "| the month's attention |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, f in figures.items():
        how = (
            f"{f.get('windows', '?')} hours, {f.get('appended', 0)} appended, nulls "
            f"{'redrawn' if f.get('nulls_redrawn', True) else 'kept'}"
        )
        lines.append(
            f"| {labels[name]} | {f['wall']:.1f} s | {f['cpu']:.1f} s | {f['cpu'] / first['cpu']:.1%} "
            f"| {f['periods_wall']:.1f} s / {f['periods_cpu']:.1f} s | {f['report_wall']:.1f} s / "
            f"{f['report_cpu']:.1f} s | {how} |"
        )
    body = (
        f"Measured with `python -m benchmarks.forecast_log --daily month --days {args.days} --periods {args.periods} "
        f"--profile {args.profile} --min-train-days {args.min_train_days}"
        f"{' --file ' + Path(args.file).name if args.file else ''}` on {machine()}; 1-minute load average at the "
        f"end {load:.1f}. Data: {source}. CPU: this process's user + system time.\n\n" + "\n".join(lines)
    )
    print(body)
    if args.write:
        title = "A day that costs a day: mid-month and the month's last day"
        write_section(ROOT / "docs" / "benchmarks.md", "daily-month", title, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
