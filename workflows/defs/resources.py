from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from workflows.data.retention import DEFAULT_KEEP
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


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"warehouse": WarehouseResource()})
