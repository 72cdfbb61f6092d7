"""pandera schemas for the `candles` and `features` tables (polars backend).

The Dagster layer enforces them as blocking asset checks; `validate` returns the
failure cases as a polars frame so the UI can show the failing rows.
"""

import pandera.polars as pa
import polars as pl

from workflows.data.features import FEATURE_COLUMNS

HOUR_US = 3_600_000_000


class CandlesSchema(pa.DataFrameModel):
    symbol: str = pa.Field(str_matches=r"^[A-Z0-9]+$")
    ts: pl.Datetime(time_unit="us", time_zone="UTC") = pa.Field()  # pyright: ignore[reportInvalidTypeForm] (pandera reads the parametrised dtype)
    open: float = pa.Field(gt=0)
    high: float = pa.Field(gt=0)
    low: float = pa.Field(gt=0)
    close: float = pa.Field(gt=0)
    volume: float = pa.Field(ge=0)

    class Config:
        strict = "filter"
        unique = ["symbol", "ts"]  # noqa: RUF012 (pandera reads its Config as plain class attributes)

    @pa.check("ts", name="on_the_hour")
    def on_the_hour(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key).dt.epoch("us") % HOUR_US == 0)

    @pa.dataframe_check(name="ohlc_consistent")
    def ohlc_consistent(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            (pl.col("high") >= pl.max_horizontal("open", "close", "low"))
            & (pl.col("low") <= pl.min_horizontal("open", "close"))
        )

    @pa.dataframe_check(name="finite_values")
    def finite_values(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.all_horizontal(*[pl.col(c).is_finite() for c in ("open", "high", "low", "close", "volume")])
        )


def _features_schema() -> pa.DataFrameSchema:
    bounded = {
        "rsi_14": pa.Check.in_range(0.0, 100.0),
        "bb_bandwidth": pa.Check.ge(0.0),
        "volatility_24h": pa.Check.ge(0.0),
        "log_volume": pa.Check.ge(0.0),
        "hour_sin": pa.Check.in_range(-1.0, 1.0),
        "hour_cos": pa.Check.in_range(-1.0, 1.0),
        "dow_sin": pa.Check.in_range(-1.0, 1.0),
        "dow_cos": pa.Check.in_range(-1.0, 1.0),
        "is_flat": pa.Check.isin([0.0, 1.0]),
    }
    finite = pa.Check(lambda data: data.lazyframe.select(pl.col(data.key).is_finite()), name="finite")
    columns = {
        "symbol": pa.Column(str),
        "ts": pa.Column(pl.Datetime(time_unit="us", time_zone="UTC")),
        "segment": pa.Column(int, pa.Check.ge(0)),
        "close": pa.Column(float, [pa.Check.gt(0.0), finite]),
    }
    for name in FEATURE_COLUMNS:
        checks = [finite] + ([bounded[name]] if name in bounded else [])
        columns[name] = pa.Column(float, checks, nullable=False)
    return pa.DataFrameSchema(columns, unique=["symbol", "ts"], strict=True, name="FeaturesSchema")


FeaturesSchema = _features_schema()


def validate(schema, frame: pl.DataFrame) -> pl.DataFrame | None:
    """None when `frame` passes; else pandera's failure cases (column, check, index, value)."""
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        return cases if isinstance(cases, pl.DataFrame) else pl.from_pandas(cases)
    return None
