"""Event-log bytes one `report` materialisation adds, read from a Dagster home after a run.

Usage: DAGSTER_HOME=... python -m benchmarks.event_log
Reads the SQLite event-log shards under $DAGSTER_HOME/history/runs/ (the run's own shard and
the index shard both hold a copy of each materialisation) and reports, for the latest `report`
materialisation: the stored event row(s) in bytes, and the size of its metadata.
"""

import argparse
import os
import sqlite3
import sys
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]


def report_event_bytes(home: Path) -> dict:
    instance = dg.DagsterInstance.from_config(str(home))
    entry = instance.get_latest_materialization_event(dg.AssetKey("report"))
    if entry is None or entry.asset_materialization is None:
        raise SystemExit(f"no `report` materialisation in {home}: run `workflows demo` with this DAGSTER_HOME first")
    metadata = entry.asset_materialization.metadata
    per_key = {k: len(dg.serialize_value(v)) for k, v in metadata.items()}  # pyright: ignore[reportArgumentType] (MetadataValue is serialisable)
    stored = 0
    for shard in sorted((home / "history" / "runs").glob("*.db")):
        with sqlite3.connect(shard) as con:
            rows = con.execute(
                "SELECT length(event) FROM event_logs WHERE run_id = ? AND dagster_event_type = 'ASSET_MATERIALIZATION'"
                " AND asset_key LIKE '%\"report\"%'",
                (entry.run_id,),
            ).fetchall()
        stored += sum(r[0] for r in rows)
    return {
        "event_bytes": len(dg.serialize_value(entry)),
        "stored_bytes": stored,
        "metadata_bytes": sum(per_key.values()),
        "report_md_bytes": per_key.get("report", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--home", default=os.environ.get("DAGSTER_HOME"), help="Dagster home (default $DAGSTER_HOME)")
    args = parser.parse_args()
    if not args.home:
        sys.exit("set DAGSTER_HOME or pass --home")
    figures = report_event_bytes(Path(args.home))
    for key, value in figures.items():
        print(f"{key}: {value:,}")


if __name__ == "__main__":
    main()
