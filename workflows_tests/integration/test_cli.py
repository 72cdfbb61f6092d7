import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb

from workflows.cli.commands import main
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.ml.profiles import control_kinds, model_kinds
from workflows_tests.helpers import BTC_FILE, HANG_GUARD_S, PROJECT_ROOT, needs_shared


def write_candles(path: Path, symbol: str, days: int = 3, seed: int = 0):
    frame = generate_candles(SyntheticSpec(symbol=symbol, days=days, seed=seed))
    frame.drop("symbol").rename({"ts": "timestamp"}).write_csv(path)
    return frame


def test_ingest_lands_files_and_files_them_away(data_dir, tmp_path):
    incoming = data_dir / "incoming"
    incoming.mkdir(parents=True)
    write_candles(incoming / "BTCUSDT-1h-2025-12.csv", "BTCUSDT")
    write_candles(incoming / "ETHUSDT-1h-2025-12.csv", "ETHUSDT", seed=1)
    (incoming / "notes.csv").write_bytes(b"\x00\x01binary")
    outside = tmp_path / "outside.csv"
    outside.write_text("x")
    os.symlink(outside, incoming / "link.csv")

    assert main(["ingest"]) == 0

    assert sorted(p.name for p in (data_dir / "processed").iterdir()) == [
        "BTCUSDT-1h-2025-12.csv",
        "ETHUSDT-1h-2025-12.csv",
    ]
    quarantined = sorted(p.name for p in (data_dir / "quarantine").iterdir())
    assert quarantined == ["notes.csv", "notes.csv.reason"]
    reason = (data_dir / "quarantine" / "notes.csv.reason").read_text()
    assert "notes.csv" in reason and "binary content" in reason
    assert (data_dir / "quarantine" / "notes.csv").read_bytes() == b"\x00\x01binary"
    # the symlink is refused and left alone, never followed
    assert (incoming / "link.csv").is_symlink() and outside.read_text() == "x"

    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        counts = dict(con.execute("SELECT symbol, count(*) FROM candles GROUP BY symbol").fetchall())
    assert counts == {"BTCUSDT": 72, "ETHUSDT": 72}

    # the runs are recorded in the instance the UI reads
    instance = dg.DagsterInstance.get()
    runs = instance.get_runs()
    assert len(runs) == 2 and {r.tags["dagster/partition"] for r in runs} == {"BTCUSDT", "ETHUSDT"}
    assert set(instance.get_dynamic_partitions("symbols")) == {"BTCUSDT", "ETHUSDT"}


def test_data_dir_given_on_the_command_line_is_the_one_the_runs_use(data_dir, tmp_path, monkeypatch):
    """`--data-dir` wins over $WORKFLOWS_DATA_DIR for the runs the command executes, not only for its messages."""
    other = tmp_path / "elsewhere"
    (other / "incoming").mkdir(parents=True)
    write_candles(other / "incoming" / "BTCUSDT-1h-2025-12.csv", "BTCUSDT")
    monkeypatch.setenv("WORKFLOWS_DATA_DIR", str(data_dir))  # restored after the test: main() exports the given one
    assert main(["--data-dir", str(other), "ingest"]) == 0
    with duckdb.connect(str(other / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM candles").fetchone() == (72,)
    assert (other / "processed" / "BTCUSDT-1h-2025-12.csv").exists()
    assert not (data_dir / "warehouse.duckdb").exists()


def test_ingest_twice_with_same_file_adds_nothing(data_dir):
    incoming = data_dir / "incoming"
    incoming.mkdir(parents=True)
    write_candles(incoming / "BTCUSDT-a.csv", "BTCUSDT")
    assert main(["ingest"]) == 0
    write_candles(incoming / "BTCUSDT-a.csv", "BTCUSDT")  # the same file again
    assert main(["ingest"]) == 0
    processed = sorted(p.name for p in (data_dir / "processed").iterdir())
    assert len(processed) == 2 and "BTCUSDT-a.csv" in processed  # the earlier copy is not overwritten
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        assert con.execute("SELECT count(*) FROM candles").fetchone()[0] == 72


def test_demo_runs_offline_end_to_end(data_dir, capsys):
    """The demo on 72 synthetic days: December 2025 is its one forecast period (15 training days before it, one
    epoch per training: a quick look, not evidence); the report reads the forecast log, the terminal shows one
    line per step and the report's summary, and the runs are in the instance the UI reads."""
    args = ["demo", "--days", "72", "--profile", "ci", "--periods", "1", "--min-train-days", "15", "--max-epochs", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out and "features: 1694 rows" in out
    assert "backfilling 1 monthly forecast periods, 2025-12 to 2025-12" in out
    assert "  ok   features" in out and "  ok   report" in out and "  ok   evaluation" in out
    assert "STEP_START" not in out and "DEBUG" not in out  # the event stream stays in the run's log
    for kind in ("reference_lstm", "attention_lstm", "transformer", "multitask", "ensemble"):
        assert kind in out
    period = data_dir / "checkpoints" / "BTCUSDT" / "periods" / "2025-12-01"
    trained = {p.name.split("-2025-12-01-")[0] for p in period.glob("*.pt")}
    assert trained == set(model_kinds()) | set(control_kinds())  # every kind and twin, trained once, in the period
    assert not list((data_dir / "checkpoints" / "BTCUSDT").glob("*.pt"))  # nothing trained outside the periods
    assert "Summary (as in the report)" in out
    report = (data_dir / "reports" / "BTCUSDT" / "attention_report.md").read_text()
    assert "**Evidence:** the forecast log, 1 monthly period" in report
    summary = report.split("## Summary", 1)[1].split("\n## ", 1)[0].strip().splitlines()
    assert len(summary) >= 3  # the bottom line and its sentences, printed from the typed results
    for line in filter(None, summary):
        assert "  " + line.replace("**", "") in out, line
    assert f"report: {data_dir / 'reports' / 'BTCUSDT' / 'attention_report.md'}" in out
    runs = dg.DagsterInstance.get().get_runs()
    assert sorted(r.job_name for r in runs) == ["forecast_period", "ingest", "pipeline"]
    pipeline = next(r for r in runs if r.job_name == "pipeline")
    assert pipeline.tags["dagster/partition"] == "BTCUSDT"
    assert dg.AssetKey("candles") not in (pipeline.asset_selection or set())  # the landed candles are used
    # the served forecast says for which hour and when it was made (and, past its age, that it is stale)
    assert "served: forecast for 2026-01-01 00:00 UTC, made " in out


@needs_shared
def test_run_on_a_shortened_real_export_puts_the_forecast_log_evidence_first(data_dir, tmp_path, capsys):
    """The real Binance BTC/USDT export, cut to its newest 140 days (the file runs newest first),
    through `workflows run` in the ci profile backfilling 2 monthly forecast periods: the report's
    headline rests on the pooled forecast log, with the controls, the corrected family and the
    volatility tests, the per-period table and the skill figure; its attention sections read the
    newest period's models on that period's hours."""
    lines = BTC_FILE.read_text().splitlines()
    short = tmp_path / "Binance_BTCUSDT_1h.csv"
    short.write_text("\n".join(lines[: 1 + 140 * 24]) + "\n")
    args = [
        "run",
        str(short),
        "--profile",
        "ci",
        "--periods",
        "2",
        "--train-days",
        "60",
        "--min-train-days",
        "45",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    report = (data_dir / "reports" / "BTCUSDT" / "attention_report.md").read_text()
    assert "Data sources:" in report and "SYNTHETIC" not in report
    assert "**Evidence:** the forecast log, 2 monthly periods (2021-05 to 2021-06)" in report
    assert "backfilling 2 monthly forecast periods, 2021-05 to 2021-06" in out
    # attention from the same period models on the same hours, pooled, each period's checkpoints and hours named
    assert "**Models and hours read:** the forecast periods' models of 2021-05 to 2021-06 (2 period(s))" in report
    assert "| 2021-06 | 193 (2021-06-01 00:00 to 2021-06-09 00:00) | `" in report
    assert "## Across forecast periods" in report and "attention_lstm across 2 period(s)" in report
    assert "**Bottom line:**" in report and "Holm" in report
    for section in (
        "## Forecasts against baselines and controls (pooled test hours of the forecast log's monthly periods)",
        "### Per monthly period",
        "## Does attention help?",
        "## Volatility",
        "### Where the volatility model looks",
        "## The families of comparisons",
    ):
        assert section in report
    for control in ("no_attention_lstm", "no_attention_reference", "ridge_ar48", "ridge_features"):
        assert f"| {control} |" in report
    for baseline in ("GARCH(1,1)", "EWMA (0.94)", "rolling 24 h", "constant training variance", "log-HAR"):
        assert f"| {baseline} |" in report
    # the volatility headline: every forecaster against the best at both horizons, the model confidence set
    # beside it (descriptive), and the recalibrated model
    assert report.count("**Lowest mean QLIKE of ") == 2
    assert report.count("Descriptive: the model confidence set at 90% (") == 2
    assert "| volatility model recalibrated in logs on validation hours |" in report
    assert "## The model assets on their own test split" not in report  # the period models are the log's
    assert (data_dir / "reports" / "BTCUSDT" / "forecast_skill.png").stat().st_size > 10_000
    assert "Bottom line" in out


def _tails_reading(folder: Path) -> list[int]:
    """Process ids of `tail` processes whose arguments name a file under `folder`."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if args and Path(args[0].decode()).name == "tail" and str(folder).encode() in b" ".join(args):
            pids.append(int(entry.name))
    return pids


def test_a_command_started_with_sigterm_ignored_leaves_no_log_tails(data_dir):
    """Dagster stops each step's `tail -F` log capture with SIGTERM and waits 30 s per stream for it; a
    process that ignores SIGTERM hands that on to the tails, which then outlive the run (seen here: a
    minute per step, and 108 tails left behind by one test session). `workflows` restores the default
    first, so a command started that way leaves none."""
    incoming = data_dir / "incoming"
    incoming.mkdir(parents=True)
    write_candles(incoming / "BTCUSDT-a.csv", "BTCUSDT", days=2)
    home = Path(os.environ["DAGSTER_HOME"])
    done = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom workflows.cli.commands import main\nsys.exit(main(['ingest']))"],
        cwd=PROJECT_ROOT,
        env={**os.environ},
        preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN),
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "BTCUSDT" in done.stdout + done.stderr  # the run happened
    left = _tails_reading(home)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == []


def test_remove_source_takes_a_poisoning_files_rows_out_of_a_symbol(data_dir, capsys):
    """A parseable file far after the stored hours lands, then fails the blocking missing-hour check on every
    later run; `workflows remove-source` takes exactly its rows out and the symbol lands files again."""
    from workflows_tests.unit.test_malformed_inputs import HEADER, hourly_lines

    incoming = data_dir / "incoming"
    incoming.mkdir(parents=True)

    def drop(name, rows):
        (incoming / name).write_text("\n".join([HEADER, *rows]) + "\n")

    drop("BTCUSDT-a.csv", hourly_lines(72))
    assert main(["ingest"]) == 0
    drop("BTCUSDT-far.csv", hourly_lines(24, start_hour=500))  # a 428-hour gap: 80% of the span missing
    assert main(["ingest"]) == 1  # landed, then the blocking check failed
    (incoming / "BTCUSDT-far.csv").unlink()
    drop("BTCUSDT-b.csv", hourly_lines(24, start_hour=72))
    assert main(["ingest"]) == 1  # a good file fails too: the symbol is poisoned

    assert main(["remove-source", "BTCUSDT", "BTCUSDT-nope.csv"]) == 2
    assert "BTCUSDT-far.csv (24 hours)" in capsys.readouterr().err
    assert main(["remove-source", "BTCUSDT", "BTCUSDT-far.csv"]) == 0
    assert "removed 24 rows of BTCUSDT-far.csv from BTCUSDT" in capsys.readouterr().out
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        assert con.execute("SELECT count(*), max(ts) FROM candles").fetchone()[0] == 96
        assert con.execute("SELECT count(*) FROM features WHERE ts > TIMESTAMP '2024-01-05'").fetchone()[0] == 0
    drop("BTCUSDT-c.csv", hourly_lines(24, start_hour=96))
    assert main(["ingest"]) == 0  # and files land again
