import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from workflows.attention.analysis import AttentionAnalysis
from workflows.data.retention import DEFAULT_KEEP
from workflows.evaluation.evidence import Evaluation
from workflows.io import write_json_atomic
from workflows.ml.model_ref import ModelRef, looks_like_ref
from workflows.records import RecordError, from_record, paths_relative, paths_resolved, to_record
from workflows.settings import DataPaths


class WarehouseResource(dg.ConfigurableResource):
    """The data folder and its DuckDB file.

    Connections come from `dagster_duckdb.DuckDBResource` (explicit SQL; it retries with
    backoff while another process holds the file's lock), but the path is resolved when a
    run starts (`data_dir`, else `$WORKFLOWS_DATA_DIR`, else `<project>/data`) rather than
    when the code location loads, and the connection is closed even when the block raises
    (an open connection would keep the file locked for the next run).
    """

    data_dir: str = Field(default="", description="Runtime data root; empty means $WORKFLOWS_DATA_DIR or ./data")
    keep_versions: int = Field(
        default=DEFAULT_KEEP,
        ge=1,
        description="Checkpoints and attention tensors kept per model and symbol (older ones are deleted; "
        "never the file the latest materialisation or the production pointer names)",
    )

    def paths(self) -> DataPaths:
        return DataPaths.resolve(self.data_dir or None).ensure()

    def duckdb_resource(self) -> DuckDBResource:
        return DuckDBResource(
            database=str(self.paths().warehouse), connection_config={"custom_user_agent": "workflows"}
        )

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.duckdb_resource().get_connection() as con:
            try:
                yield con
            finally:
                con.close()


# Results stored by a name of their own, not by their module: moving a class keeps every stored output readable.
STORED_TYPES: dict[str, type] = {
    "Evaluation": Evaluation,
    "AttentionAnalysis": AttentionAnalysis,
    "ModelRef": ModelRef,
}
RECORD_SCHEMA = 1


class RecordsIOManager(dg.ConfigurableIOManager):
    """Asset outputs as JSON records with a schema version and a stable type name
    (`<data>/outputs/<asset>/<partition>.json`), never pickles.

    An output is one of: a registered result (`STORED_TYPES`: a model asset's `ModelRef` among them), a
    dict of name -> one registered result, or plain JSON (paths). Anything else is refused when it is
    stored, with the field that cannot be written. A model reference stored as plain JSON before
    `ModelRef` existed reads as one (or fails naming the file and the remedy)."""

    warehouse: dg.ResourceDependency[WarehouseResource]

    def _path(self, asset_key: dg.AssetKey, partition: str | None) -> Path:
        folder = self.warehouse.paths().root / "outputs" / "__".join(asset_key.path)
        return folder / f"{quote(partition or '__unpartitioned__', safe='')}.json"

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if obj is None:
            return
        names = {cls: name for name, cls in STORED_TYPES.items()}
        classes = {type(v) for v in obj.values()} if isinstance(obj, dict) else set()
        if type(obj) in names:
            kind = {"type": names[type(obj)]}
        elif len(classes) == 1 and next(iter(classes)) in names:
            kind = {"type": "dict", "of": names[next(iter(classes))]}
        else:
            kind = {"type": "json"}  # to_record refuses what plain JSON cannot hold
        value = paths_relative(to_record(obj, context.asset_key.to_user_string()), self.warehouse.paths().root)
        record = {"schema": RECORD_SCHEMA, **kind, "value": value}
        partition = context.partition_key if context.has_partition_key else None
        path = write_json_atomic(self._path(context.asset_key, partition), record, indent=None, allow_nan=True)
        context.add_output_metadata({"stored": dg.MetadataValue.path(str(path))})

    def _load(self, asset_key: dg.AssetKey, partition: str | None):
        path = self._path(asset_key, partition)
        where = f"{asset_key.to_user_string()}" + (f" [{partition}]" if partition else "")
        if not path.exists():
            raise FileNotFoundError(
                f"no stored output of {where} at {path}: materialise it first (outputs stored as pickles before "
                "the JSON records are not read; rematerialise them)"
            )
        remedy = f"rematerialise {where} (its stored output is rewritten)"
        try:
            record = json.loads(path.read_text())
            kind, value = record["type"], paths_resolved(record["value"], self.warehouse.paths().root)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # truncated, edited or not a record
            raise RecordError(f"{path}: not a readable stored output ({type(exc).__name__}: {exc}); {remedy}") from exc
        if record.get("schema") != RECORD_SCHEMA:
            raise RecordError(f"{path}: record schema {record.get('schema')!r}, this code reads {RECORD_SCHEMA}")
        if kind == "ModelRef" or (kind == "json" and looks_like_ref(value)):  # the plain dicts written before ModelRef
            return ModelRef.from_json(value, path, remedy)
        if kind == "json":
            return value
        if kind == "dict":
            cls = STORED_TYPES[record["of"]]
            return {k: from_record(v, cls, f"{where}[{k!r}]") for k, v in value.items()}
        return from_record(value, STORED_TYPES[kind], where)

    def load_input(self, context: dg.InputContext):
        key = context.asset_key
        if not context.has_asset_partitions:
            return self._load(key, None)
        partitions = context.asset_partition_keys
        if len(partitions) == 1:
            return self._load(key, partitions[0])
        return {p: self._load(key, p) for p in partitions}


@dg.definitions
def resources() -> dg.Definitions:
    warehouse = WarehouseResource()
    return dg.Definitions(
        resources={"warehouse": warehouse, "io_manager": RecordsIOManager(warehouse=warehouse)},
    )
