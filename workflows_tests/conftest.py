import os
import signal
from pathlib import Path

import dagster as dg
import pytest

from workflows.ml.placement import LOCK_DIR_ENV
from workflows.settings import default_sigterm


def pytest_configure(config):
    # Started with SIGTERM ignored (as some runners start jobs), every Dagster step in a test would wait a
    # minute for its log tails and leave them running: the suite took 34 minutes instead of 12 here.
    default_sigterm()
    # Started in the background without job control (`make test &`, nohup, some CI runners), the suite inherits
    # SIGINT ignored; every process it starts would inherit that too (Python installs its Ctrl-C handler only
    # where SIGINT is at its default), and Dagster copies SIGINT's action to SIGTERM in a process that executes a
    # run. Seen here: the Ctrl-C test's `workflows demo` ran to the end and exited 0, and the Celery script,
    # started with SIGTERM ignored, could not trap it and waited for its Redis for ever.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """No test writes to the project's data/ or dagster_home/, or the user's home, and none waits for
    the machine's training slots (a training the user runs meanwhile holds those, not the tests')."""
    monkeypatch.setenv("WORKFLOWS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "device_locks"))
    (tmp_path / "dagster_home").mkdir()


@pytest.fixture
def one_thread():
    """Tiny models: intra-op threads only add overhead (tens of times slower on a busy machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return Path(os.environ["WORKFLOWS_DATA_DIR"])


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst
