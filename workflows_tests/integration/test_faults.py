"""Faults: kill -9 during an ingest or a training, an unwritable data folder.
Real processes, bounded in time, cleaned up by process id."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import torch

from workflows_tests.helpers import HANG_GUARD_S, PROJECT_ROOT

pytestmark = pytest.mark.slow

INGEST = """
import sys
import duckdb
from workflows.data.ingest import land
from workflows.data.sources.files import read_candle_file
result = read_candle_file(sys.argv[1])
with duckdb.connect(sys.argv[2]) as con:
    land(con, "BTCUSDT", [result])
print("done", flush=True)
"""


def run(args, timeout=HANG_GUARD_S, **kw):
    return subprocess.run(
        [sys.executable, *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout, **kw
    )


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    from workflows.data.sources.synthetic import SyntheticSpec, generate_candles

    path = tmp_path_factory.mktemp("big") / "BTCUSDT-1h.csv"
    frame = generate_candles(SyntheticSpec(days=3 * 365, seed=4))
    frame.drop("symbol").rename({"ts": "timestamp"}).write_csv(path)
    return path, frame.height


def test_kill_9_during_ingest_leaves_all_or_nothing(big_file, tmp_path):
    path, rows = big_file
    # how long an uninterrupted ingest takes here, to aim the kills inside it: the faster of two runs
    # (the first pays for cold imports, so kills aimed by it alone landed after later runs had ended)
    durations = []
    for i in range(2):
        t0 = time.perf_counter()
        assert run(["-c", INGEST, str(path), str(tmp_path / f"timing{i}.duckdb")]).returncode == 0
        durations.append(time.perf_counter() - t0)
    duration = min(durations)
    rng = random.Random(0)
    killed = 0
    for trial in range(10):
        db = tmp_path / f"w{trial}.duckdb"
        proc = subprocess.Popen(
            [sys.executable, "-c", INGEST, str(path), str(db)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(rng.uniform(0.1, 0.85) * duration)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=HANG_GUARD_S)
        killed += proc.returncode == -signal.SIGKILL
        with duckdb.connect(str(db)) as con:  # the file opens after the crash
            tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            count = con.execute("SELECT count(*) FROM candles").fetchone()[0] if "candles" in tables else 0
            if count:
                dup = con.execute("SELECT count(*) - count(DISTINCT (symbol, ts)) FROM candles").fetchone()[0]
                assert dup == 0
        assert count in (0, rows), f"trial {trial}: {count} of {rows} rows after kill -9"
        done = run(["-c", INGEST, str(path), str(db)])  # a rerun completes the ingest
        assert done.returncode == 0, done.stderr[-2000:]
        with duckdb.connect(str(db)) as con:
            assert con.execute("SELECT count(*) FROM candles").fetchone()[0] == rows
    assert killed >= 8  # the kills landed while the ingest was running, not after it ended


TRAIN = """
import sys, time
import torch
from dataclasses import replace
from workflows.data.features import compute_features
from workflows.ml.models import ArchConfig
from workflows.ml.profiles import recipe_for
from workflows.ml.training import train
from workflows.ml.windows import build_windows
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
recipe = recipe_for("attention_lstm", "ci")
data = build_windows(compute_features(generate_candles(SyntheticSpec(days=40, seed=1))), recipe.window_spec)
torch.manual_seed(0)
hold_after = int(sys.argv[2])  # 0: run to the end; n: after epoch n (its resume state written), wait to be killed

def report(r):
    print("ran epoch", r.epoch, flush=True)
    if r.epoch == hold_after:
        time.sleep(3600)

result = train(ArchConfig(recipe.arch, 3, dict(recipe.kwargs)).build(), data,
               replace(recipe.train, epochs=6), callback=report, resume_path=sys.argv[1])
torch.save({k: v for k, v in result.model.state_dict().items()}, sys.argv[3])
print("epochs", result.epochs_run, flush=True)
"""
# Generous: a few seconds of work, but a busy 2-core machine can stretch a Python start and an import of torch.
PROCESS_LIMIT_S = 1800


def _epochs_ran(stdout: str) -> list[int]:
    return [int(line.split()[-1]) for line in stdout.splitlines() if line.startswith("ran epoch")]


def test_kill_9_during_training_resumes_to_the_same_model(tmp_path):
    """Killed after epoch 2 (the process holds there until killed: no race with the clock), a rerun runs only
    epochs 3 to 6 and ends with the weights of an uninterrupted training."""
    import select

    reference = run(["-c", TRAIN, str(tmp_path / "ref.resume"), "0", str(tmp_path / "ref.pt")], PROCESS_LIMIT_S)
    assert reference.returncode == 0, reference.stderr[-2000:]
    assert _epochs_ran(reference.stdout) == [1, 2, 3, 4, 5, 6]
    resume = tmp_path / "crash.resume"
    proc = subprocess.Popen(
        [sys.executable, "-c", TRAIN, str(resume), "2", str(tmp_path / "out.pt")],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        deadline = time.monotonic() + PROCESS_LIMIT_S
        while "ran epoch 2\n" not in seen:  # the event: epoch 2 done and its resume state published
            assert proc.poll() is None and time.monotonic() < deadline, seen
            if select.select([proc.stdout], [], [], 1.0)[0]:
                seen.append(proc.stdout.readline())
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=PROCESS_LIMIT_S)
    assert proc.returncode == -signal.SIGKILL
    assert torch.load(resume, weights_only=True)["epoch"] == 2
    # a half-written file from an interrupted save never replaces the real one
    (tmp_path / f".{resume.name}.99999.tmp").write_bytes(b"half a checkpoint")
    again = run(["-c", TRAIN, str(resume), "0", str(tmp_path / "out.pt")], PROCESS_LIMIT_S)
    assert again.returncode == 0, again.stderr[-2000:]
    assert _epochs_ran(again.stdout) == [3, 4, 5, 6]  # only the remaining epochs ran
    assert "epochs 6" in again.stdout and "epochs 6" in reference.stdout
    a = torch.load(tmp_path / "ref.pt", weights_only=True)
    b = torch.load(tmp_path / "out.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_unusable_data_folder_is_a_clear_error(tmp_path):
    """The data folder is a plain file (works as root, where permissions would not stop us)."""
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    out = run(
        ["-m", "workflows.cli.commands", "--data-dir", str(blocker), "demo", "--days", "30", "--profile", "ci"],
        env={**os.environ, "DAGSTER_HOME": str(tmp_path / "home")},
    )
    assert out.returncode == 2
    assert f"cannot use the data folder {blocker}" in out.stderr
    assert "Traceback" not in out.stderr
    assert blocker.read_text() == "not a folder"  # nothing overwritten, nothing written beside it
    assert not list(tmp_path.rglob("*.duckdb"))


def test_read_only_data_folder_is_a_clear_error(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: file permissions do not stop root, so a read-only folder cannot be simulated")
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o500)
    try:
        out = run(
            ["-m", "workflows.cli.commands", "--data-dir", str(data), "demo", "--days", "30", "--profile", "ci"],
            env={**os.environ, "DAGSTER_HOME": str(tmp_path / "home")},
        )
        assert out.returncode == 2 and "cannot use the data folder" in out.stderr
        assert not list(Path(data).rglob("*"))
    finally:
        os.chmod(data, 0o700)


def test_full_disk_while_saving_a_checkpoint_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    """ENOSPC in the middle of a checkpoint write: a clear OSError, no final file, no temp file."""
    import errno

    from workflows.ml import checkpoints
    from workflows.ml.models import ArchConfig
    from workflows.ml.windows import Scaler

    real_write = Path.write_bytes

    def half_then_full(self, data):  # the checkpoint's bytes reach the disk by Path.write_bytes (io.py)
        real_write(self, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_then_full)
    arch = ArchConfig("reference_lstm", 3, {"hidden": 4})
    target = tmp_path / "ckpt" / "m.pt"
    with pytest.raises(OSError, match="No space left"):
        checkpoints.save_checkpoint(target, arch.build(), arch, Scaler([0.0] * 3, [1.0] * 3, 1.0), {}, "v", {}, {})
    assert not list(target.parent.iterdir())  # no final file, and the partial temp file is removed


FULL_DISK = """
import os, resource, signal, sys
import duckdb
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.data.warehouse import upsert_candles
con = duckdb.connect(sys.argv[1])
upsert_candles(con, generate_candles(SyntheticSpec(days=2, seed=1)), "first.csv")
con.execute("CHECKPOINT")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing us
limit = os.path.getsize(sys.argv[1]) + 4096  # the disk is full: the next write of any size fails
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
upsert_candles(con, generate_candles(SyntheticSpec(days=3000, seed=2)), "second.csv")
"""


def test_a_failed_commit_surfaces_its_own_error_and_writes_nothing(tmp_path):
    """The COMMIT fails (the file-size limit stands in for a full disk): the user sees why ("File too large"),
    not the ROLLBACK's "no transaction is active", and the warehouse holds exactly what it held before."""
    db = tmp_path / "warehouse.duckdb"
    done = run(["-c", FULL_DISK, str(db)])
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()
    error = next(line for line in reversed(last) if "Exception: " in line)  # the exception raised to the user
    assert "Failed to commit" in error and "File too large" in error, done.stderr[-2000:]
    assert "the ROLLBACK after it failed too" in done.stderr  # the second failure is a note, not the error
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT source, count(*) FROM candles GROUP BY 1").fetchall() == [("first.csv", 48)]
