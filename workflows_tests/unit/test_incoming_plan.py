"""`plan_incoming`, the `incoming_files` sensor's pass over incoming/ without Dagster: what it lands, what
waits, what it says."""

import os
import time

from workflows.data.ingest import SETTLE_SECONDS, plan_incoming
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.settings import DataPaths


def _drop(folder, name, symbol="BTCUSDT", age_s=60.0, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    frame = generate_candles(SyntheticSpec(symbol=symbol, days=2, seed=seed))
    path = folder / name
    frame.drop("symbol").rename({"ts": "timestamp"}).write_csv(path)
    past = time.time() - age_s
    os.utime(path, (past, past))
    return path


def test_a_pass_batches_per_symbol_waits_for_writers_and_says_why(tmp_path):
    paths = DataPaths(tmp_path / "data")
    old = _drop(paths.incoming, "BTCUSDT-a.csv")
    _drop(paths.incoming, "BTCUSDT-b.csv", seed=1, age_s=30)
    _drop(paths.incoming, "ETHUSDT-a.csv", symbol="ETHUSDT")
    _drop(paths.incoming, "SOLUSDT-writing.csv", symbol="SOLUSDT", age_s=0)
    os.symlink(old, paths.incoming / "link.csv")
    plan = plan_incoming(paths, {"gone.csv": "1:1"}, time.time(), max_files=1)
    assert [(b.symbol, [p.name for p, _ in b.files]) for b in plan.batches] == [
        ("BTCUSDT", ["BTCUSDT-a.csv"]),  # oldest first, one file a batch
        ("BTCUSDT", ["BTCUSDT-b.csv"]),
        ("ETHUSDT", ["ETHUSDT-a.csv"]),
    ]
    assert plan.symbols == {"BTCUSDT", "ETHUSDT"}
    assert set(plan.seen) == {"BTCUSDT-a.csv", "BTCUSDT-b.csv", "ETHUSDT-a.csv"}  # gone.csv forgotten
    assert plan.batches[0].run_key == f"BTCUSDT|BTCUSDT-a.csv:{plan.seen['BTCUSDT-a.csv']}"
    assert ("warning", "refused link.csv: symbolic links are not followed") in plan.messages
    assert ("info", "SOLUSDT-writing.csv is still being written; next tick") in plan.messages
    again = plan_incoming(paths, plan.seen, time.time() + SETTLE_SECONDS)
    assert [b.symbol for b in again.batches] == ["SOLUSDT"]  # settled now; the others were read already


def test_an_unreadable_file_goes_to_quarantine_and_the_others_go_on(tmp_path):
    paths = DataPaths(tmp_path / "data")
    _drop(paths.incoming, "BTCUSDT-a.csv")
    (paths.incoming / "garbage.csv").write_bytes(b"\x00\x01")
    os.utime(paths.incoming / "garbage.csv", (time.time() - 60, time.time() - 60))
    plan = plan_incoming(paths, {}, time.time())
    assert [b.symbol for b in plan.batches] == ["BTCUSDT"]
    assert (paths.quarantine / "garbage.csv.reason").exists() and not (paths.incoming / "garbage.csv").exists()
    assert any(level == "warning" and text.startswith("quarantined garbage.csv") for level, text in plan.messages)
    assert "garbage.csv" not in plan.seen
