from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from dagster._utils.backoff import backoff
from pydantic import Field

from workflows.settings import DataPaths


class WarehouseResource(dg.ConfigurableResource):
    """The data folder and its DuckDB file.

    Like `dagster_duckdb.DuckDBResource` (explicit SQL, retrying while another
    process holds the file's lock), but the path is resolved when a run starts
    (`data_dir`, else `$WORKFLOWS_DATA_DIR`, else `<project>/data`) rather than
    when the code location loads, and the connection is closed even on error.
    """

    data_dir: str = Field(default="", description="Runtime data root; empty means $WORKFLOWS_DATA_DIR or ./data")

    def paths(self) -> DataPaths:
        return DataPaths.resolve(self.data_dir or None).ensure()

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = backoff(
            fn=duckdb.connect,
            retry_on=(RuntimeError, duckdb.IOException),
            kwargs={"database": str(self.paths().warehouse), "config": {"custom_user_agent": "workflows"}},
            max_retries=10,
        )
        try:
            yield con
        finally:
            con.close()


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"warehouse": WarehouseResource()})
