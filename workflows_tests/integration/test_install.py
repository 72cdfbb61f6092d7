"""The locked install works on any machine: the lock resolves from the package registry alone
(no local wheel folder) for Linux x86-64, Linux arm64 and macOS 14+ on Apple silicon, pins torch
with no local label, and where a wheel folder holds the CPU build this machine still takes it."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from workflows_tests.helpers import HANG_GUARD_S, PROJECT_ROOT

CONSTRAINTS = PROJECT_ROOT / "constraints.txt"
# (uv's --python-platform, MACOSX_DEPLOYMENT_TARGET or None)
PLATFORMS = [
    ("x86_64-manylinux_2_28", None),
    ("aarch64-manylinux_2_28", None),
    ("aarch64-apple-darwin", "14.0"),
]
OFFLINE_HINTS = ("failed to fetch", "error sending request", "dns error", "connection refused", "network")


def _compile(platform: str, macos: str | None, out: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    if macos:
        env["MACOSX_DEPLOYMENT_TARGET"] = macos
    cmd = [sys.executable, "-m", "uv", "pip", "compile", "pyproject.toml", "--extra", "dev", "-c", str(CONSTRAINTS)]
    cmd += ["--python-version", "3.11", "--python-platform", platform, "--no-config", "--no-header", "-o", str(out)]
    done = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    if done.returncode and any(h in done.stderr.lower() for h in OFFLINE_HINTS) and "no solution" not in done.stderr:
        pytest.skip(f"the package registry cannot be reached from here: {done.stderr.strip()[-300:]}")
    return done


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def test_constraints_pin_no_local_version_label():
    pins = _pins(CONSTRAINTS.read_text())
    assert pins.get("torch") == "2.13.0", pins.get("torch")
    local = {name: v for name, v in pins.items() if "+" in v}
    assert not local, f"local version labels exist only in one machine's wheel folder: {local}"


@pytest.mark.parametrize(("platform", "macos"), PLATFORMS, ids=[p for p, _ in PLATFORMS])
def test_lock_resolves_without_a_local_wheel_folder(platform, macos, tmp_path):
    out = tmp_path / "resolved.txt"
    done = _compile(platform, macos, out)
    assert done.returncode == 0, done.stderr[-2000:]
    pins = _pins(out.read_text())
    assert pins["torch"] == "2.13.0"
    # every locked package keeps its locked version on this platform
    locked = _pins(CONSTRAINTS.read_text())
    moved = {n: (v, locked[n]) for n, v in pins.items() if n in locked and locked[n] != v}
    assert not moved, f"resolved versions differ from constraints.txt: {moved}"
    # the registry's Linux builds of torch are CUDA builds (they bring the nvidia-* wheels); macOS's are not
    assert ("nvidia-cublas" in pins) == ("linux" in platform), sorted(n for n in pins if n.startswith("nvidia"))


def test_a_platform_torch_has_no_wheel_for_is_refused(tmp_path):
    """The resolution can fail: torch 2.13 has no wheel for macOS 13, so that platform must not resolve."""
    done = _compile("aarch64-apple-darwin", "13.0", tmp_path / "resolved.txt")
    assert done.returncode != 0
    assert "torch" in done.stderr


def _local_cpu_wheel() -> Path | None:
    folders = os.environ.get("PIP_FIND_LINKS", "").split()
    if not folders:
        got = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.find-links"], capture_output=True, text=True
        )
        folders = got.stdout.split() if got.returncode == 0 else []
    for folder in folders:
        for wheel in Path(folder.removeprefix("file://")).glob("torch-2.13.0+cpu-*.whl"):
            return wheel
    return None


def test_this_machine_takes_the_local_cpu_build_where_its_wheel_folder_has_one():
    wheel = _local_cpu_wheel()
    if wheel is None:
        pytest.skip("no local wheel folder with torch 2.13.0+cpu here: the registry's build is the right one")
    import torch

    assert torch.__version__ == "2.13.0+cpu", f"{wheel} is configured, yet torch {torch.__version__} is installed"
