"""The candle checks after a write cover the rows it wrote and the stored row before them,
not the whole symbol: a bad new row is still caught (with its file, hour and rule), a gap
opened at the boundary is still found, and the missing-hour ratio is still the symbol's."""

import dagster as dg
import duckdb
import polars as pl

from workflows.data.quality import candle_findings
from workflows.data.sources.candles import ReadResult, empty_rejected
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.data.warehouse import candle_span, load_candles_from, upsert_candles
from workflows.defs.assets_data import candles
from workflows.defs.resources import WarehouseResource

SYMBOL = "BTCUSDT"


def history(days: int = 10) -> pl.DataFrame:
    return generate_candles(SyntheticSpec(symbol=SYMBOL, days=days, seed=3))


def broken(frame: pl.DataFrame, row: int) -> pl.DataFrame:
    """`frame` with the high of one row below its low: what the readers reject, written by other means."""
    return frame.with_columns(
        high=pl.when(pl.int_range(pl.len()) == row).then(pl.col("low") * 0.99).otherwise(pl.col("high"))
    )


def findings(con, start) -> dict:
    checked = load_candles_from(con, SYMBOL, start)
    return {f.name: f for f in candle_findings(checked, candle_span(con, SYMBOL))} | {"_rows": checked}


def test_a_bad_new_row_is_caught_with_its_file_hour_and_rule(tmp_path):
    frame = history()
    old, new = frame.head(frame.height - 3), broken(frame.tail(3), row=1)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        upsert_candles(con, old, source="old.csv")
        stats = upsert_candles(con, new, source="new.csv")
        assert stats.inserted == 3 and stats.first_changed == new["ts"][0]
        found = findings(con, stats.first_changed)
    rows = found["_rows"]
    assert rows.height == 4 and rows["ts"].to_list() == [old["ts"][-1], *new["ts"].to_list()]  # boundary + written
    bad_ts = new["ts"][1]
    ohlc = found["ohlc_consistent"]
    assert not ohlc.passed and ohlc.failing is not None
    assert ohlc.failing.select("ts", "source").rows() == [(bad_ts, "new.csv")]
    schema = found["candles_schema"]
    assert not schema.passed and schema.failing is not None
    assert schema.failing.select("check", "ts", "source").rows() == [("ohlc_consistent", bad_ts, "new.csv")]
    assert found["duplicate_hours"].passed and found["missing_hour_ratio"].passed


def test_full_validation_still_reads_every_row(tmp_path):
    """A row broken before the checks existed is outside an incremental check, inside a full one."""
    frame = broken(history(), row=5)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        upsert_candles(con, frame.head(frame.height - 1), source="old.csv")
        stats = upsert_candles(con, frame.tail(1), source="new.csv")
        assert findings(con, stats.first_changed)["ohlc_consistent"].passed
        full = findings(con, candle_span(con, SYMBOL).first)
    assert full["_rows"].height == frame.height
    assert full["ohlc_consistent"].failing is not None
    assert full["ohlc_consistent"].failing.select("ts", "source").rows() == [(frame["ts"][5], "old.csv")]


def test_a_gap_at_the_boundary_is_found_and_the_ratio_is_the_symbols(tmp_path):
    frame = history()
    old, new = frame.head(100), frame.slice(105, 3)  # hours 100..104 never arrive
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        upsert_candles(con, old, source="old.csv")
        stats = upsert_candles(con, new, source="new.csv")
        found = findings(con, stats.first_changed)
    ratio = found["missing_hour_ratio"]
    assert ratio.value == 5 / 108  # the whole symbol's: 5 of 108 hours, though 4 rows were checked
    assert not ratio.passed and not ratio.blocking  # above 1% warns, below 10% does not block
    assert ratio.failing is not None
    assert ratio.failing.rows() == [(old["ts"][-1], new["ts"][0], 5)]
    assert "5 of 108 hours missing" in ratio.summary and "among the 4 hours checked" in ratio.summary


def test_the_asset_checks_what_it_wrote(instance, data_dir, monkeypatch):
    """Through the `candles` asset: a second batch with a bad row (a source that failed to reject it)
    fails the checks, names the file and hour, and the checks read the written rows and one more."""
    import workflows.defs.assets_data as assets_data

    frame = history()
    batches = iter([(frame.head(frame.height - 3), "first.csv"), (broken(frame.tail(3), row=2), "second.csv")])

    def read(context, config, paths, symbol, last_ts):
        rows, name = next(batches)
        return [ReadResult(source=name, candles=rows, rejected=empty_rejected(), format="csv")]

    monkeypatch.setattr(assets_data, "_read_sources", read)
    instance.add_dynamic_partitions("symbols", [SYMBOL])

    def run():
        return dg.materialize(
            [candles],
            partition_key=SYMBOL,
            instance=instance,
            resources={"warehouse": WarehouseResource(data_dir=str(data_dir))},
            raise_on_error=False,
        )

    first, second = run(), run()
    meta = [
        {k: v.value for k, v in r.asset_materializations_for_node("candles")[-1].metadata.items()}
        for r in (first, second)
    ]
    assert meta[0]["rows_checked"] == frame.height - 3  # first load: every row
    assert meta[1]["rows_checked"] == 4 and meta[1]["dagster/row_count"] == frame.height
    evaluations = {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
        for e in second.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert {n for n, e in evaluations.items() if not e.passed} == {"candles_schema", "ohlc_consistent"}
    shown = evaluations["ohlc_consistent"].metadata["failing_rows"].value
    bad_ts = frame["ts"][frame.height - 1]
    assert isinstance(shown, str) and "second.csv" in shown and f"{bad_ts:%Y-%m-%d %H:%M}" in shown
    assert "ohlc_consistent" in str(evaluations["candles_schema"].metadata["failing_rows"].value)
