"""The Dagster UI in a real browser: headless Chromium opens the asset graph and the
latest `report` materialisation of a demo run and saves screenshots. Skipped, with
the reason, where Chromium is not installed (Debian: `apt-get install chromium`)."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.devserver import dagster_dev
from workflows.cli.commands import main
from workflows_tests.helpers import HANG_GUARD_S

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1600,1000",
    "--virtual-time-budget=20000",
]


def screenshot(url: str, path: Path, profile: Path) -> None:
    assert CHROMIUM is not None
    subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={path}", url],
        check=True,
        capture_output=True,
        timeout=HANG_GUARD_S,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_asset_graph_and_report_in_chromium(tmp_path, data_dir):
    # a report to look at: one forecast period, one epoch per training
    quick = ["--days", "72", "--profile", "ci", "--periods", "1", "--min-train-days", "15", "--max-epochs", "1"]
    assert main(["demo", *quick]) == 0
    shots = Path(os.environ.get("WORKFLOWS_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    # Dagster's "join the community" dialog covers the page until dismissed; mark it seen
    nux = Path(os.environ["DAGSTER_HOME"]) / ".nux"
    nux.mkdir(exist_ok=True)
    (nux / "nux.yaml").write_text("seen: 1\n")
    with dagster_dev(os.environ["DAGSTER_HOME"], via="workspace") as server:
        pages = {
            "asset_graph.png": f"{server.url}/asset-groups",
            "report.png": f"{server.url}/assets/report?partition=BTCUSDT",
        }
        for name, url in pages.items():
            screenshot(url, shots / name, tmp_path / f"profile-{name}")
    for name in ("asset_graph.png", "report.png"):
        with Image.open(shots / name) as img:
            assert img.size == (1600, 1000)
            pixels = np.asarray(img.convert("L"), dtype=float)
        assert pixels.std() > 15, f"{name} looks blank"
