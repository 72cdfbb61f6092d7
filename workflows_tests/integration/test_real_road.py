"""The road from real candles to the report: `workflows run` (a file, landed candles, the exchange),
a history too short for a period, `workflows fetch` against a fake exchange on 127.0.0.1, `workflows reproduce`, and
their error paths (unknown symbol, no candles, offline). ci profile, a few days of data."""

import json
import math
import socket
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

from workflows.cli.commands import main
from workflows.data.history import select_history
from workflows.settings import PROJECT_ROOT, dagster_home
from workflows_tests.helpers import BTC_FILE, needs_shared
from workflows_tests.integration.test_cli import write_candles

HOUR_MS = 3_600_000


# --- history_days: one selection for every consumer ---------------------------------------------


def _hours(n: int) -> pl.DataFrame:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    return pl.DataFrame({"symbol": ["X"] * n, "ts": [start + timedelta(hours=i) for i in range(n)]})


def test_select_history_keeps_the_last_n_days():
    frame = _hours(24 * 10)
    last3 = select_history(frame, 3)
    assert last3.height == 72 and last3["ts"].max() == frame["ts"].max()
    newest = frame["ts"].max()
    assert isinstance(newest, datetime)
    assert last3["ts"].min() == newest - timedelta(hours=71)
    assert select_history(frame, None).height == select_history(frame, 0).height == 240
    assert select_history(frame, 30).height == 240  # more days than there are: all of them
    with pytest.raises(ValueError, match="history_days must be positive"):
        select_history(frame, -1)


# --- instances that agree ----------------------------------------------------------------------


def test_dagster_home_is_the_users_when_set_else_the_projects(monkeypatch, tmp_path):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "mine"))
    assert dagster_home() == tmp_path / "mine"
    monkeypatch.delenv("DAGSTER_HOME")
    assert dagster_home() == PROJECT_ROOT / "dagster_home"


def test_makefile_keeps_the_users_folders():
    text = (PROJECT_ROOT / "Makefile").read_text()
    assert "export DAGSTER_HOME ?= " in text and "export WORKFLOWS_DATA_DIR ?= " in text


# --- workflows run on landed candles ------------------------------------------------------------


def test_run_on_a_history_too_short_for_a_period_says_how_much_more_it_needs(data_dir, capsys):
    """40 landed days hold no monthly forecast period: `run --symbol` lands nothing new, trains nothing, runs no
    report, and says how many more days (or how small a `--min-train-days`) a period needs. The runs are in the
    instance the UI reads."""
    incoming = data_dir / "incoming"
    incoming.mkdir(parents=True)
    write_candles(incoming / "BTCUSDT-1h.csv", "BTCUSDT", days=40)
    assert main(["ingest"]) == 0
    capsys.readouterr()

    assert main(["run", "--symbol", "btc/usdt", "--profile", "ci"]) == 1
    captured = capsys.readouterr()
    assert "BTCUSDT from its 960 landed hours, profile 'ci'" in captured.out
    assert "  ok   features" in captured.out and "STEP_START" not in captured.out
    err = captured.err
    # 39 days of features (the first day is the features' warm-up), almost all in December 2025, whose 60 training
    # days end 20 days before it: no shorter setting helps, only earlier history
    assert "BTCUSDT: 39 days of history (2025-11-23 to 2025-12-31) hold no forecast period" in err
    assert "land 75 more days of earlier history" in err and "--min-train-days" not in err
    assert not (data_dir / "checkpoints").exists() or not list((data_dir / "checkpoints").rglob("*.pt"))
    assert {r.job_name for r in dg.DagsterInstance.get().get_runs()} == {"ingest"}


def test_run_without_candles_names_the_commands_that_land_them(data_dir, capsys):
    assert main(["run", "--symbol", "ETHUSDT"]) == 2
    err = capsys.readouterr().err
    assert "no candles for ETHUSDT" in err
    assert "workflows fetch ETHUSDT --days 365" in err and "make ingest" in err and "workflows run path/to/" in err
    assert main(["reproduce", "--symbol", "ETHUSDT"]) == 2
    assert "no candles for ETHUSDT" in capsys.readouterr().err


def test_unknown_symbol_is_refused_with_what_was_expected(data_dir, capsys):
    for command in (["run", "--symbol", "FOO"], ["fetch", "??"], ["reproduce", "--symbol", "HELLO"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "unknown symbol" in err and "trading pair such as BTCUSDT" in err


# --- workflows fetch against a fake exchange ----------------------------------------------------


def _price(hour: int) -> float:
    return 30000 * math.exp(0.03 * math.sin(hour / 7.0) + 0.02 * math.sin(hour / 2.3) + 0.01 * math.cos(hour / 1.1))


def _kline(open_ms: int) -> list:
    h = open_ms // HOUR_MS
    o, c = _price(h - 1), _price(h)
    hi, lo = max(o, c) * 1.002, min(o, c) * 0.998
    return [open_ms, f"{o:.2f}", f"{hi:.2f}", f"{lo:.2f}", f"{c:.2f}", f"{100 + h % 17}", open_ms + HOUR_MS - 1]


@pytest.fixture
def exchange():
    """Binance's klines endpoint on 127.0.0.1, in a thread: only BTCUSDT exists."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
            seen.append(query)
            if query.get("symbol") != "BTCUSDT":
                self.send_response(400)
                self.end_headers()
                self.wfile.write(b'{"code":-1121,"msg":"Invalid symbol."}')
                return
            start = int(query["startTime"]) // HOUR_MS * HOUR_MS
            opens = list(range(start, int(query["endTime"]) + 1, HOUR_MS))[: int(query.get("limit", 500))]
            body = json.dumps([_kline(o) for o in opens]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fetch_lands_closed_candles_from_the_exchange(data_dir, exchange, capsys):
    url, seen = exchange
    assert main(["fetch", "BTCUSDT", "--days", "3", "--exchange-url", url]) == 0
    out = capsys.readouterr().out
    assert "next: `workflows run --symbol BTCUSDT`" in out
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        row = con.execute("SELECT count(*), min(source) FROM candles WHERE symbol = 'BTCUSDT'").fetchone()
        assert row is not None
        n, sources = row
        features = con.execute("SELECT count(*) FROM features WHERE symbol = 'BTCUSDT'").fetchone()[0]
    assert 71 <= n <= 72 and sources == "binance:BTCUSDT"  # 3 days of closed hours (the current one is open)
    assert features > 0
    assert seen and all(q["interval"] == "1h" for q in seen)
    # a second fetch resumes after the last stored hour
    seen.clear()
    assert main(["fetch", "BTCUSDT", "--days", "3", "--exchange-url", url]) == 0
    last = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    assert int(seen[0]["startTime"]) >= int(last.timestamp() * 1000)


def test_fetch_unknown_symbol_says_the_exchange_does_not_know_it(data_dir, exchange, capsys):
    url, _ = exchange
    assert main(["fetch", "XYZUSDT", "--days", "1", "--exchange-url", url]) == 1
    err = capsys.readouterr().err
    assert "unknown symbol XYZUSDT on the exchange" in err and "Invalid symbol" in err


def test_fetch_and_run_offline_say_so_and_write_nothing(data_dir, capsys):
    url = f"http://127.0.0.1:{_closed_port()}"
    assert main(["fetch", "BTCUSDT", "--days", "1", "--exchange-url", url, "--retries", "0"]) == 1
    err = capsys.readouterr().err
    assert err.count("offline: could not reach the exchange") == 1 and "workflows run FILE" in err
    assert main(["run", "--symbol", "BTCUSDT", "--exchange", "--exchange-url", url, "--retries", "0"]) == 1
    assert "offline: could not reach the exchange" in capsys.readouterr().err
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        assert con.execute("SELECT count(*) FROM candles").fetchone()[0] == 0


# --- workflows reproduce ------------------------------------------------------------------------


def _check_reproduction(report: Path, out: str, days: int):
    text = report.read_text()
    assert f"last {days} days" in text
    header = "| measure | published (90 days) | this run | untrained control | shuffled-target control |"
    assert header in text and header in out
    for row in ("| normalised entropy (median) | 1.0000 |", "| top 5 hours ago | 44, 45, 43, 46, 42 |"):
        assert row in text
    assert "| test RMSE, % | 0.66 |" in text
    claims = text.split("## What the numbers support", 1)[1]
    assert claims.count("\n- ") >= 4
    assert "Uniform attention" in claims and "Test RMSE 0.66%" in claims and "zero return" in claims
    assert (report.parent / "reproduce_attention_analysis.png").stat().st_size > 20_000


def test_reproduce_offline_on_synthetic_candles(data_dir, capsys, one_thread):
    assert main(["reproduce", "--synthetic", "--symbol", "SYNTHUSDT", "--days", "30", "--profile", "ci"]) == 0
    out = capsys.readouterr().out
    report = data_dir / "reports" / "SYNTHUSDT" / "reproduce.md"
    _check_reproduction(report, out, 30)
    assert "SYNTHETIC" in report.read_text() and "NOT the reference recipe" in report.read_text()


@needs_shared
def test_reproduce_on_a_shortened_real_export(data_dir, tmp_path, capsys, one_thread):
    lines = BTC_FILE.read_text().splitlines()
    short = tmp_path / "Binance_BTCUSDT_1h.csv"
    short.write_text("\n".join(lines[: 1 + 40 * 24]) + "\n")  # the newest 40 days (the file runs newest first)
    assert main(["reproduce", str(short), "--days", "30", "--profile", "ci"]) == 0
    report = data_dir / "reports" / "BTCUSDT" / "reproduce.md"
    _check_reproduction(report, capsys.readouterr().out, 30)
    assert "Data sources:" in report.read_text() and "2021-06-10 00:00" in report.read_text()


def test_claims_follow_the_numbers():
    """A peaked map is reported as not reproducing 'uniform attention'; a flat one as reproducing it,
    with the untrained control beside it; the RMSE line depends on the Diebold-Mariano test."""
    from workflows.attention.analysis import describe
    from workflows.reporting.reproduce import Reproduction, claims
    from workflows.stats.significance import diebold_mariano

    rng = np.random.default_rng(0)
    n, t = 400, 48
    flat = np.full((n, t), 1 / t) * rng.uniform(0.98, 1.02, (n, t))
    flat /= flat.sum(1, keepdims=True)
    peaked = flat.copy()
    peaked[:, t - 17] += 0.5  # 17 hours ago
    peaked /= peaked.sum(1, keepdims=True)
    controls = {"untrained": {"attention": flat[::-1].copy()}, "shuffled_targets": {"attention": flat}}
    actual = rng.normal(0, 0.01, n)

    def rep(attention, forecast):
        return Reproduction(
            symbol="X",
            days=90,
            profile="cpu",
            first_hour="",
            last_hour="",
            windows={},
            analysis=describe(attention, controls, resamples=200),
            rmse_pct=float(np.sqrt(np.mean((forecast - actual) ** 2)) * 100),
            zero_rmse_pct=float(np.sqrt(np.mean(actual**2)) * 100),
            mean_rmse_pct=0.0,
            dm=diebold_mariano(forecast - actual, actual),
            min_skill=0.01,
        )

    flat_lines = claims(rep(flat, actual * 0 + 0.001))
    peaked_lines = claims(rep(peaked, 0.5 * actual))
    assert flat_lines[0].startswith("Uniform attention") and ": reproduced (entropy" in flat_lines[0]
    assert "NOT reproduced" in peaked_lines[0] and "peaks 17 h ago" in peaked_lines[0]
    assert "ranking of near-equal weights is noise" in flat_lines[2]
    assert "the ranking means something" in peaked_lines[2]
    assert "no evidence that the model beats the zero forecast" in flat_lines[3]
    assert "the model beats the zero forecast." in peaked_lines[3]


# --- the terminal ----------------------------------------------------------------------------------


def test_terminal_shows_bars_for_epochs_and_members_and_warnings_in_full():
    import io
    from types import SimpleNamespace

    from workflows.cli.terminal import StepRenderer

    stream = io.StringIO()
    r = StepRenderer(stream)

    def log(step, message, level=20):
        r.handle(SimpleNamespace(step_key=step, dagster_event=None, user_message=message, level=level, timestamp=0.0))

    log("attention_lstm_model", "epoch 3/20: train 0.9 val 0.8 (best 0.8) 100 samples/s")
    assert r.bar is not None and r.bar.total == 20 and r.bar.n == 3
    log("ensemble_model", "member 2/5 epoch 1/20: train 1.0 val 0.9 (best 0.9) 100 samples/s")
    assert r.bar_key == ("ensemble_model", 2) and r.bar.n == 1
    warning = "missing-hour ratio 2.1% on BTCUSDT: " + "x" * 300
    log("features", warning, level=30)
    log("evaluation", "an ordinary info line")  # not shown
    text = stream.getvalue()
    assert f"WARNING features: {warning}" in text and "an ordinary info line" not in text


def test_demo_without_a_profile_trains_the_compared_designs_in_cpu_and_the_rest_in_ci():
    """Each period model's profile, resolved once (`kind_profiles`): the demo's compared designs (and their
    no-attention twins) in cpu, the rest in ci; the period settings given on the command line reach every period
    model's Config."""
    from argparse import Namespace

    from workflows.cli.periods import period_ops
    from workflows.defs.assets_periods import PERIOD_KINDS, PeriodTrainingConfig
    from workflows.ml.profiles import demo_profiles, kind_profiles

    args = Namespace(periods=None, train_days=None, min_train_days=None)
    ops = period_ops(kind_profiles("ci", demo_profiles()), args)
    assert set(ops) == {f"{k}_period_model" for k in PERIOD_KINDS}
    assert all(isinstance(o, PeriodTrainingConfig) for o in ops.values())
    profile = {name.removesuffix("_period_model"): op.profile for name, op in ops.items()}
    assert profile["attention_lstm"] == profile["no_attention_lstm"] == "cpu"
    assert profile["reference_lstm"] == profile["no_attention_reference"] == "cpu"
    assert {profile[k] for k in ("transformer", "multitask", "ensemble", "volatility", "no_attention_volatility")} == {
        "ci"
    }
    assert all(o.profile == "ci" for o in period_ops(kind_profiles("ci"), args).values())
    args.train_days, args.min_train_days = 90, 30
    assert all((o.train_days, o.min_train_days) == (90, 30) for o in period_ops(kind_profiles("cpu"), args).values())
    with pytest.raises(ValueError, match="unknown profile 'gpu': choose one of ci, cpu, full"):
        kind_profiles("gpu")


def test_run_and_reproduce_without_a_symbol_use_the_only_landed_one_or_say_what_to_do(data_dir, capsys):
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "no candles for any symbol" in err and "workflows fetch BTCUSDT --days 365" in err
    incoming = data_dir / "incoming"  # made by the first command
    write_candles(incoming / "BTCUSDT-1h.csv", "BTCUSDT", days=3)
    write_candles(incoming / "ETHUSDT-1h.csv", "ETHUSDT", days=3, seed=1)
    assert main(["ingest"]) == 0
    capsys.readouterr()
    for command in (["run"], ["reproduce"]):
        assert main(command) == 2
        assert "2 symbols are landed (BTCUSDT, ETHUSDT): name one with --symbol" in capsys.readouterr().err


def test_too_short_a_window_says_so_before_training():
    from workflows.data.features import compute_features
    from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
    from workflows.ml.windows import build_windows

    with pytest.raises(ValueError, match=r"no validation windows.*land more candles"):
        build_windows(compute_features(generate_candles(SyntheticSpec(days=20))))
    assert len(build_windows(compute_features(generate_candles(SyntheticSpec(days=30)))).val) > 0
