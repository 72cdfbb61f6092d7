"""The CLI's warehouse reads wait for a lock another process holds (a sensor or automation run), as the
assets' connections do, instead of failing with DuckDB's lock error."""

import subprocess
import sys
import threading
from datetime import datetime, timezone

import duckdb
import polars as pl

from workflows.cli.symbols import landed_symbols
from workflows.data.warehouse import upsert_candles
from workflows.settings import DataPaths

HOLD = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])  # read-write: the file's lock, as a run writing to it holds it
print("locked", flush=True)
sys.stdin.readline()
con.close()
"""
LIMIT_S = 600  # generous: every step below takes well under a second on a calm machine


def test_a_cli_read_waits_for_the_lock_and_then_reads(data_dir, monkeypatch):
    paths = DataPaths.resolve(data_dir).ensure()
    candle = pl.DataFrame(
        {"symbol": ["BTCUSDT"], "ts": [datetime(2024, 1, 1, tzinfo=timezone.utc)]}
        | {c: [1.0] for c in ("open", "high", "low", "close", "volume")}
    )
    with duckdb.connect(str(paths.warehouse)) as con:
        upsert_candles(con, candle, "test")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(paths.warehouse)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline() == "locked\n"
        refused = threading.Event()  # the event: a connection attempt met the lock
        real = duckdb.connect

        def connect(*args, **kwargs):
            try:
                return real(*args, **kwargs)
            except duckdb.IOException:
                refused.set()
                raise

        monkeypatch.setattr(duckdb, "connect", connect)
        outcome: dict = {}

        def read():
            try:
                outcome["landed"] = landed_symbols(paths)
            except Exception as exc:  # what the user would have seen
                outcome["error"] = exc

        reader = threading.Thread(target=read)
        reader.start()
        assert refused.wait(LIMIT_S)
        holder.stdin.write("release\n")
        holder.stdin.flush()
        assert holder.wait(LIMIT_S) == 0
        reader.join(LIMIT_S)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(LIMIT_S)
    assert outcome == {"landed": {"BTCUSDT": 1}}
