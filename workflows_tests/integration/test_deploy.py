"""The Postgres-storage instance of deploy/dagster.yaml, against a real, throwaway
Postgres server started and stopped by this test."""

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import dagster as dg
import pytest
import yaml

from workflows.defs.assets_data import candles, features
from workflows.defs.resources import WarehouseResource
from workflows_tests.helpers import HANG_GUARD_S, PROJECT_ROOT

INITDB = shutil.which("initdb")
PG_CTL = shutil.which("pg_ctl")


def _as_postgres() -> list[str]:
    """initdb refuses to run as root: run the server as the `postgres` user when we are root."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start Postgres as another user")
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and no 'postgres' user exists to run the server")
    return ["runuser", "-u", "postgres", "--"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres():
    if not (INITDB and PG_CTL):
        pytest.skip("no PostgreSQL server here (initdb/pg_ctl not found): install postgresql to run this test")
    prefix = _as_postgres()
    # pytest's own temporary folders are private to root; the server user must reach this one
    root = Path(tempfile.mkdtemp(prefix="workflows-pg-"))
    os.chmod(root, 0o755)
    base = root / "pg"
    base.mkdir()
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if prefix:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    port = free_port()
    subprocess.run(
        [*prefix, INITDB, "-D", str(data), "-U", "dagster", "--auth=trust"],
        check=True,
        capture_output=True,
        timeout=HANG_GUARD_S,
    )
    subprocess.run(
        [
            *prefix,
            PG_CTL,
            "-D",
            str(data),
            "-l",
            str(base / "log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {port} -k {sock} -h 127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
        timeout=HANG_GUARD_S,
    )
    try:
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "dagster",
                "-d",
                "postgres",
                "-c",
                "CREATE DATABASE dagster",
            ],
            check=True,
            capture_output=True,
            timeout=HANG_GUARD_S,
        )
        yield port
    finally:
        subprocess.run(
            [*prefix, PG_CTL, "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True, timeout=HANG_GUARD_S
        )
        shutil.rmtree(root, ignore_errors=True)


def test_postgres_storage_from_deploy_yaml(postgres, tmp_path, monkeypatch, data_dir):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    for key, value in {
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(postgres),
        "DAGSTER_PG_USER": "dagster",
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": "dagster",
    }.items():
        monkeypatch.setenv(key, value)
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    assert "postgres" in config["storage"]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        instance.add_dynamic_partitions("symbols", ["BTCUSDT"])
        result = dg.materialize(
            [candles, features],
            partition_key="BTCUSDT",
            instance=instance,
            resources={"warehouse": WarehouseResource(data_dir=str(data_dir))},
            run_config={"ops": {"candles": {"config": {"days": 5}}}},
        )
        assert result.success
        assert instance.get_latest_materialization_event(dg.AssetKey("features")) is not None
    count = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(postgres),
            "-U",
            "dagster",
            "-d",
            "dagster",
            "-tAc",
            "SELECT count(*) FROM runs",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert int(count.stdout.strip()) == 1
