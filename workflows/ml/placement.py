"""Where a training runs: one training per GPU, each on its own device; on CPU, side by
side up to a configured number, with the cores divided between them.

`machine_plan()` sizes the `gpu` concurrency pool (`workflows pools` writes it into
the Dagster instance): the number of GPUs, else `WORKFLOWS_CPU_TRAINING_SLOTS`
(default: a quarter of the cores, at least 1). `place_training()` claims one device
slot for the duration of a training with an exclusive file lock per slot (`filelock`), so two
trainings on one host never share a GPU, and sets torch's intra-op threads to the
cores divided by the slots: torch with all cores per process, two processes on the
same cores, slowed tenfold and more on this project's machines.

The locks live in `WORKFLOWS_DEVICE_LOCK_DIR` (default: a folder in the system temp
directory), one per host: a worker on a GPU host claims that host's GPUs.
"""

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from workflows.settings import CPU_SLOTS_ENV as CPU_SLOTS_ENV  # where the CLI and tests read them from
from workflows.settings import LOCK_DIR_ENV as LOCK_DIR_ENV
from workflows.settings import cpu_training_slots, device_lock_dir


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask, e.g. a container's CPU set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@dataclass(frozen=True)
class MachinePlan:
    """How many trainings run at once on this machine, and with how many threads each."""

    gpus: int
    cores: int
    training_slots: int
    threads_per_training: int

    @property
    def kind(self) -> str:
        return "cuda" if self.gpus else "cpu"

    def describe(self) -> str:
        if self.gpus:
            return (
                f"{self.gpus} GPU(s): {self.training_slots} training(s) at once, one per device, "
                f"{self.threads_per_training} CPU thread(s) each"
            )
        return (
            f"CPU only, {self.cores} core(s): {self.training_slots} training(s) side by side, "
            f"{self.threads_per_training} torch thread(s) each"
        )


def machine_plan(gpus: int | None = None, cores: int | None = None, cpu_slots: int | None = None) -> MachinePlan:
    """The plan for this machine (arguments override what is detected or configured)."""
    gpus = gpu_count() if gpus is None else gpus
    cores = cpu_cores() if cores is None else cores
    if gpus > 0:
        slots = gpus
    else:
        if cpu_slots is None:
            configured = cpu_training_slots()
            cpu_slots = configured if configured is not None else max(1, cores // 4)
        slots = max(1, min(cpu_slots, cores))
    return MachinePlan(gpus=gpus, cores=cores, training_slots=slots, threads_per_training=max(1, cores // slots))


@dataclass(frozen=True)
class Placement:
    device: str  # a torch device string: "cuda:1", "cpu", "mps"
    threads: int
    slot: int | None  # the claimed slot, None when the caller forced a device


def _lock_dir() -> Path:
    folder = device_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def _claim(kind: str, slots: int, wait_s: float, log: Callable[[str], None]) -> Iterator[int]:
    folder = _lock_dir()
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        for slot in range(slots):
            lock = FileLock(folder / f"{kind}{slot}.lock", thread_local=False)
            try:
                lock.acquire(blocking=False)  # probe: a slot another training holds is skipped, not waited for
            except Timeout:
                continue
            try:
                yield slot
            finally:
                lock.release()
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"all {slots} {kind} training slot(s) in {folder} stayed busy for {wait_s:.0f} s: another training "
                f"holds each; lower the `gpu` pool limit to {slots} (`workflows pools`) or wait for them to finish"
            )
        if not told:
            log(f"all {slots} {kind} training slot(s) busy; waiting for one")
            told = True
        time.sleep(0.5)


@contextmanager
def place_training(
    requested: str = "auto",
    plan: MachinePlan | None = None,
    wait_s: float = 6 * 3600,
    log: Callable[[str], None] = lambda message: None,
) -> Iterator[Placement]:
    """Claim a device for one training and divide the threads; restore torch's threads after.

    `requested`: "auto" (a free GPU, else Apple MPS, else a CPU slot), "cuda" (a free
    GPU), "cpu" (a CPU slot), or an explicit device such as "cuda:1" (no claim).
    """
    import torch

    plan = plan or machine_plan()
    before = torch.get_num_threads()
    try:
        if requested in ("auto", "cuda") and plan.gpus:
            with _claim("cuda", plan.gpus, wait_s, log) as slot:
                torch.set_num_threads(plan.threads_per_training)
                yield Placement(f"cuda:{slot}", plan.threads_per_training, slot)
        elif requested == "auto" and torch.backends.mps.is_available():
            yield Placement("mps", before, None)
        elif requested in ("auto", "cpu"):
            with _claim("cpu", plan.training_slots, wait_s, log) as slot:
                torch.set_num_threads(plan.threads_per_training)
                yield Placement("cpu", plan.threads_per_training, slot)
        else:
            yield Placement(requested, before, None)
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class TorchBuild:
    """Which torch this environment runs and what it can train on (`workflows doctor`)."""

    version: str  # e.g. 2.13.0 (the registry's build) or 2.13.0+cpu (a CPU-only wheel)
    cuda_build: str | None  # the CUDA version torch was built against; None for a CPU-only build
    devices: tuple[str, ...]  # the GPUs torch can use now
    mps: bool  # Apple silicon's GPU
    threads: int  # torch's intra-op threads in this process

    @property
    def device(self) -> str:
        return "cuda" if self.devices else "mps" if self.mps else "cpu"

    def describe(self) -> str:
        build = f"CUDA {self.cuda_build} build" if self.cuda_build else "CPU-only build"
        if self.devices:
            where = f"trains on {len(self.devices)} GPU(s): " + ", ".join(self.devices)
        elif self.mps:
            where = "trains on Apple's MPS device"
        elif self.cuda_build:
            where = "trains on the CPU: a CUDA build, but no GPU is visible (driver, CUDA_VISIBLE_DEVICES?)"
        else:
            where = "trains on the CPU"
        return f"torch {self.version} ({build}); {where}; {self.threads} torch thread(s)"


def torch_build() -> TorchBuild:
    import torch

    cuda = torch.cuda.is_available()
    devices = tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) if cuda else ()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return TorchBuild(
        version=torch.__version__,
        cuda_build=torch.version.cuda,  # pyright: ignore[reportAttributeAccessIssue]
        devices=devices,
        mps=mps,
        threads=torch.get_num_threads(),
    )
