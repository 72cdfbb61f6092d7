"""`workflows pools` (the concurrency pools sized to this machine) and `workflows doctor`."""

import sys

from workflows.settings import DataPaths, dagster_home, use_dagster_home


def cmd_pools(args) -> int:
    """Size the instance's concurrency pools to this machine: `gpu` follows the devices
    (or the configured CPU trainings), `duckdb` stays at one writer."""
    import subprocess

    from workflows.ml.placement import machine_plan

    home = use_dagster_home()  # `dagster instance concurrency` (a subprocess) reads it
    plan = machine_plan(cpu_slots=args.cpu_trainings)
    limits = {"gpu": plan.training_slots, "duckdb": 1}
    print(f"{plan.describe()}; DAGSTER_HOME={home}")
    for pool, limit in limits.items():
        done = subprocess.run(
            [sys.executable, "-m", "dagster", "instance", "concurrency", "set", pool, str(limit)],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            print(f"could not set pool {pool} to {limit}: {done.stderr.strip()}", file=sys.stderr)
            return done.returncode
        print(f"pool {pool}: limit {limit}")
    return 0


def cmd_doctor(args) -> int:
    """What this environment runs: Python, torch's build and device, the training plan, the folders."""
    import platform

    import dagster
    import duckdb
    import polars

    from workflows.ml.placement import machine_plan, torch_build

    build = torch_build()
    print(f"python {platform.python_version()} on {platform.system()} {platform.machine()}")
    print(build.describe())
    print(f"training plan: {machine_plan().describe()}")
    print(f"dagster {dagster.__version__}, duckdb {duckdb.__version__}, polars {polars.__version__}")
    print(f"DAGSTER_HOME={dagster_home()}")
    print(f"data folder: {DataPaths.resolve(args.data_dir).root}")
    return 0
