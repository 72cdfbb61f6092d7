import os
from pathlib import Path

import dagster as dg
import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
BTC_FILE = SHARED_DATA / "Binance_BTCUSDT_1h.csv"
ETH_FILE = SHARED_DATA / "Binance_ETHUSDT_1h.csv"

needs_shared = pytest.mark.skipif(
    not BTC_FILE.exists(), reason="../shared/data is absent (a user's fresh clone has no ../shared)"
)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """No test writes to the project's data/ or dagster_home/, or the user's home. Device locks
    (workflows/ml/placement.py) are per test too: the default folder is one per user and host,
    so trainings of another test run on the machine (another checkout, xdist) would queue on it."""
    monkeypatch.setenv("WORKFLOWS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("WORKFLOWS_DEVICE_LOCK_DIR", str(tmp_path / "device_locks"))
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
