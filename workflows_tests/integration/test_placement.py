"""Pools sized to the machine: one training per GPU on its own device, CPU trainings side by
side with the cores divided, and the `gpu` pool limit written into the instance."""

import os
import subprocess
import sys
import time

import pytest
import torch

from workflows.ml.placement import LOCK_DIR_ENV, MachinePlan, machine_plan, place_training


@pytest.fixture(autouse=True)
def _lock_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "locks"))


def test_plan_follows_the_devices_and_the_configured_cpu_trainings(monkeypatch):
    monkeypatch.delenv("WORKFLOWS_CPU_TRAINING_SLOTS", raising=False)
    assert machine_plan(gpus=4, cores=32) == MachinePlan(gpus=4, cores=32, training_slots=4, threads_per_training=8)
    assert machine_plan(gpus=0, cores=32).training_slots == 8  # default: a quarter of the cores
    assert machine_plan(gpus=0, cores=2) == MachinePlan(gpus=0, cores=2, training_slots=1, threads_per_training=2)
    monkeypatch.setenv("WORKFLOWS_CPU_TRAINING_SLOTS", "3")
    plan = machine_plan(gpus=0, cores=32)
    assert (plan.training_slots, plan.threads_per_training) == (3, 10)
    assert machine_plan(gpus=0, cores=2, cpu_slots=8).training_slots == 2  # never more trainings than cores
    monkeypatch.setenv("WORKFLOWS_CPU_TRAINING_SLOTS", "many")
    with pytest.raises(ValueError, match="WORKFLOWS_CPU_TRAINING_SLOTS"):
        machine_plan(gpus=0, cores=4)


def test_each_gpu_training_gets_its_own_device():
    plan = machine_plan(gpus=2, cores=8)
    before = torch.get_num_threads()
    with place_training("auto", plan) as first, place_training("auto", plan) as second:
        assert {first.device, second.device} == {"cuda:0", "cuda:1"}
        assert torch.get_num_threads() == 4
        with (
            pytest.raises(TimeoutError, match="lower the `gpu` pool limit"),
            place_training("auto", plan, wait_s=0.6),
        ):
            pass
    assert torch.get_num_threads() == before
    with place_training("cuda:1", plan) as forced:
        assert (forced.device, forced.slot) == ("cuda:1", None)


def test_cpu_trainings_divide_the_cores_across_processes(tmp_path):
    """A training in another process holds slot 0: this one gets slot 1, with cores / slots threads."""
    plan = machine_plan(gpus=0, cores=4, cpu_slots=2)
    ready = tmp_path / "ready"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import pathlib, time; from workflows.ml.placement import machine_plan, place_training\n"
            f"with place_training('cpu', machine_plan(gpus=0, cores=4, cpu_slots=2)) as p:\n"
            f"    pathlib.Path({str(ready)!r}).write_text(str(p.slot)); time.sleep(30)",
        ],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ready.read_text() == "0"
        with place_training("cpu", plan) as mine:
            assert (mine.device, mine.slot, mine.threads) == ("cpu", 1, 2)
            assert torch.get_num_threads() == 2
            with pytest.raises(TimeoutError), place_training("cpu", plan, wait_s=0.6):
                pass
    finally:
        holder.kill()
        holder.wait()
    with place_training("cpu", plan) as freed:  # the holder's lock went with its process
        assert freed.slot == 0


def test_pools_command_sets_the_gpu_pool_from_the_plan(tmp_path, monkeypatch):
    from workflows.cli.commands import main

    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert main(["pools", "--cpu-trainings", "2"]) == 0
    expected = machine_plan(cpu_slots=2).training_slots
    got = subprocess.run(
        [sys.executable, "-m", "dagster", "instance", "concurrency", "get", "gpu"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"{expected}" in got.split("gpu", 1)[1], got
