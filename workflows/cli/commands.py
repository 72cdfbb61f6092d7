"""Headless commands: `workflows ingest`, `demo`, `run`, `fetch` and `reproduce`.

They run through Dagster against the instance in `$DAGSTER_HOME` (else the project's
dagster_home/), so every run is recorded and visible in the UI (`make ui`). The
terminal shows one line per step with progress bars; `-v` prints Dagster's full
event stream as well."""

import argparse
import sys

from workflows.cli.demo import DEMO_DAYS, DEMO_SEED, DEMO_STRENGTH, cmd_demo
from workflows.cli.ingest import cmd_ingest, cmd_remove_source
from workflows.cli.instance import interrupted
from workflows.cli.machine import cmd_doctor, cmd_pools
from workflows.cli.reproduce import cmd_reproduce
from workflows.cli.run import cmd_fetch, cmd_run
from workflows.settings import WORKERS_ENV, DataPaths, default_sigterm, exchange_url, use_data_dir


def main(argv: list[str] | None = None) -> int:
    from workflows.data.sources.exchange import DEFAULT_BASE_URL

    default_sigterm()  # else each step's log capture waits a minute (`settings.default_sigterm`)

    exchange = exchange_url(DEFAULT_BASE_URL)
    parser = argparse.ArgumentParser(prog="workflows", description=__doc__)
    parser.add_argument("--data-dir", default=None, help="runtime data root (default: $WORKFLOWS_DATA_DIR or ./data)")
    sub = parser.add_subparsers(dest="command", required=True)
    ingest = sub.add_parser("ingest", help="land every file in <data>/incoming through Dagster")
    demo = sub.add_parser("demo", help="run the pipeline offline on synthetic candles")
    demo.add_argument("--symbol", default="BTCUSDT")
    demo.add_argument("--days", type=int, default=DEMO_DAYS)
    demo.add_argument("--seed", type=int, default=DEMO_SEED)
    demo.add_argument("--lag", type=int, default=17, help="planted lag in hours (default 17)")
    demo.add_argument(
        "--strength",
        type=float,
        default=DEMO_STRENGTH,
        help=f"planted AR coefficient (default {DEMO_STRENGTH}; 0 = noise)",
    )
    run = sub.add_parser(
        "run", help="one symbol (a file, landed candles, or the exchange) to models, evaluation, analysis and report"
    )
    run.add_argument(
        "file", nargs="?", help="a candle file (CryptoDataDownload, Binance klines, generic OHLCV; CSV or Parquet)"
    )
    run.add_argument(
        "--symbol", default=None, help="the symbol: of landed candles (no FILE), or when FILE holds several"
    )
    run.add_argument("--exchange", action="store_true", help="with --symbol: fetch new candles from the exchange first")
    fetch = sub.add_parser("fetch", help="closed hourly candles from the exchange (Binance) into the warehouse")
    fetch.add_argument("symbol")
    for p in (run, fetch):
        p.add_argument("--days", type=int, default=365, help="exchange: days to fetch when nothing is stored yet")
        p.add_argument("--exchange-url", default=exchange, help="default: $WORKFLOWS_EXCHANGE_URL or Binance")
        p.add_argument("--retries", type=int, default=4, help="exchange: retries per request (backoff)")
    repro = sub.add_parser("reproduce", help="the original 90-day study, side by side with its published figures")
    repro.add_argument("file", nargs="?", help="a candle file to land first")
    repro.add_argument("--symbol", default=None, help="a landed symbol (or the symbol of FILE / --synthetic)")
    repro.add_argument("--synthetic", action="store_true", help="offline: on synthetic candles")
    repro.add_argument("--days", type=int, default=90, help="the last N days (default 90, as the study)")
    repro.add_argument("--seed", type=int, default=7, help="--synthetic: the generator's seed")
    repro.add_argument("--profile", default=None, help="default cpu: the reference recipe exactly")
    for p in (demo, run):
        p.add_argument("--profile", default=None, help="ci | cpu | full (default: $WORKFLOWS_PROFILE or cpu)")
        p.add_argument(
            "--periods",
            type=int,
            default=12,
            help="walk-forward: backfill the newest N monthly forecast periods the history allows (default 12; "
            "0: none, report on the periods already stored)",
        )
        p.add_argument("--train-days", type=int, default=None, help="most training days per period (default 365)")
        p.add_argument(
            "--max-epochs",
            type=int,
            default=None,
            help="cap every period training's epochs (default: the profile's); for quick looks, not for evidence",
        )
        p.add_argument(
            "--workers",
            type=int,
            default=None,
            help=f"a period's independent steps (its models and twins) in up to N processes at once, each training "
            f"with its share of the cores (default ${WORKERS_ENV}, else 1: every step in this process)",
        )
        p.add_argument(
            "--min-train-days",
            type=int,
            default=None,
            help="fewest training days a period needs (default 60; demo 45); a history too short for one period "
            "says how much more it needs",
        )
    remove = sub.add_parser("remove-source", help="take one source file's rows out of a symbol, then re-check it")
    remove.add_argument("symbol")
    remove.add_argument("file", help="the source file's name, as in the candles' `source` column")
    pools = sub.add_parser("pools", help="size the gpu pool to this machine's devices (duckdb stays at 1)")
    pools.add_argument(
        "--cpu-trainings", type=int, default=None, help="CPU only: trainings side by side (default: cores / 4)"
    )
    sub.add_parser("doctor", help="print torch's version, build (CUDA or CPU), device and threads, and the folders")
    for p in (ingest, demo, run, fetch, repro, remove):
        p.add_argument("-v", "--verbose", action="store_true", help="print Dagster's full event stream too")
    args = parser.parse_args(argv)
    handlers = {
        "ingest": cmd_ingest,
        "demo": cmd_demo,
        "run": cmd_run,
        "fetch": cmd_fetch,
        "reproduce": cmd_reproduce,
        "pools": cmd_pools,
        "remove-source": cmd_remove_source,
        "doctor": cmd_doctor,
    }
    try:
        DataPaths.resolve(args.data_dir).ensure()
        if args.data_dir:  # the folder given wins over $WORKFLOWS_DATA_DIR, in this process and those it starts
            use_data_dir(DataPaths.resolve(args.data_dir).root)
    except OSError as exc:
        root = DataPaths.resolve(args.data_dir).root
        print(
            f"cannot use the data folder {root}: {exc.strerror or exc}. Set WORKFLOWS_DATA_DIR (or --data-dir) "
            "to a writable folder.",
            file=sys.stderr,
        )
        return 2
    from workflows.cli.terminal import RunInterrupted

    command = list(sys.argv[1:] if argv is None else argv)
    try:
        return handlers[args.command](args)
    except SystemExit as exc:
        return int(exc.code or 0)
    except RunInterrupted as stop:
        return interrupted(stop.run_id, command)
    except KeyboardInterrupt:
        return interrupted(None, command)


if __name__ == "__main__":
    sys.exit(main())
