"""The Dagster UI in a real browser: headless Chromium opens the asset graph and the
latest `report` materialisation of a demo run and saves screenshots. Skipped, with
the reason, where Chromium is not installed (Debian: `apt-get install chromium`)."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workflows.cli import main
from workflows_tests.conftest import PROJECT_ROOT
from workflows_tests.test_ui import QUERY, free_port, graphql

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1600,1000", "--virtual-time-budget=20000"]


def screenshot(url: str, path: Path, profile: Path) -> None:
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={path}", url],
                   check=True, capture_output=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_asset_graph_and_report_in_chromium(tmp_path, data_dir):
    assert main(["demo", "--days", "30", "--profile", "ci"]) == 0  # a report to look at
    shots = Path(os.environ.get("WORKFLOWS_SCREENSHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    # Dagster's "join the community" dialog covers the page until dismissed; mark it seen
    nux = Path(os.environ["DAGSTER_HOME"]) / ".nux"
    nux.mkdir(exist_ok=True)
    (nux / "nux.yaml").write_text("seen: 1\n")
    port = free_port()
    dagster = Path(sys.executable).parent / "dagster"
    proc = subprocess.Popen(
        ["env", "--default-signal=INT,TERM", str(dagster), "dev", "-h", "127.0.0.1", "-p", str(port),
         "-w", "workspace.yaml"], cwd=PROJECT_ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 150
        while time.time() < deadline:
            try:
                if graphql(port, QUERY)["data"]["assetNodes"]:
                    break
            except (OSError, KeyError, TypeError, ValueError):
                time.sleep(1)
        base = f"http://127.0.0.1:{port}"
        pages = {"asset_graph.png": f"{base}/asset-groups", "report.png": f"{base}/assets/report?partition=BTCUSDT"}
        for name, url in pages.items():
            screenshot(url, shots / name, tmp_path / f"profile-{name}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    for name in ("asset_graph.png", "report.png"):
        with Image.open(shots / name) as img:
            assert img.size == (1600, 1000)
            pixels = np.asarray(img.convert("L"), dtype=float)
        assert pixels.std() > 15, f"{name} looks blank"
