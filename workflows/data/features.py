"""Feature table: polars expressions over one symbol's candles, with no look-ahead.

Every feature at hour t uses only candles at or before t (a test perturbs the
future and checks the past is unchanged).

Gaps. Candles are never invented. Each run of consecutive hours is a *segment*
(`segment` counts the gaps before the row); every rolling or recursive indicator
restarts at a segment start, and a row enters the table only once all its
indicators are warmed up inside its own segment (`WARMUP_HOURS`). So no feature
ever mixes hours on both sides of a gap, and a model window that must cover
consecutive hours can check `segment` and `ts`.

Flat zero-volume hours (exchange downtime: open = high = low = close, volume 0)
are kept as real hours (price did not move) and flagged in `is_flat`, so a model
or analysis can exclude or weight them; `log_volume = ln(1 + volume)` is 0 there.

MACD values are divided by the close so they are comparable across price levels
(fractions, not dollars). Bollinger %B is 0.5 when the 20-hour band has zero
width (a flat market), where it would otherwise be undefined.
"""

import polars as pl

# The reference analysis's three inputs.
REFERENCE_FEATURES = ["log_return", "log_volume", "volatility_24h"]
FEATURE_COLUMNS = [
    *REFERENCE_FEATURES,
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_pct_b",
    "bb_bandwidth",
    "hour_sin",
    "hour_cos",
    "dow_sin",
    "dow_cos",
    "is_flat",
]
# A polars Schema (not a dict): what DataFrame.cast and the type checker accept.
FEATURES_SCHEMA = pl.Schema(
    {
        "symbol": pl.String(),
        "ts": pl.Datetime("us", "UTC"),
        "segment": pl.Int64(),
        "close": pl.Float64(),
        **{c: pl.Float64() for c in FEATURE_COLUMNS},
    }
)

VOL_WINDOW = 24
RSI_PERIOD = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
BB_WINDOW, BB_K = 20, 2.0
# Hours a segment needs before its first complete row: MACD's signal line needs
# the slow EMA (26 closes) and then 9 MACD values.
WARMUP_HOURS = MACD_SLOW + MACD_SIGNAL - 1


def _ema(expr: pl.Expr, span: int) -> pl.Expr:
    return expr.ewm_mean(span=span, adjust=False, min_samples=span)


def compute_features(candles: pl.DataFrame) -> pl.DataFrame:
    """Features for every complete hour of the given candles (any number of symbols)."""
    if candles.is_empty():
        return pl.DataFrame(schema=FEATURES_SCHEMA)
    seg = ["symbol", "segment"]
    close = pl.col("close")
    frame = (
        candles.lazy()
        .sort("symbol", "ts")
        .with_columns(
            segment=(pl.col("ts").diff().over("symbol") != pl.duration(hours=1))
            .fill_null(False)
            .cast(pl.Int64)
            .cum_sum()
            .over("symbol")
        )
        .with_columns(
            log_return=(close / close.shift(1)).log().over(seg),
            log_volume=pl.col("volume").log1p(),
            is_flat=(
                (pl.col("volume") == 0) & (pl.col("high") == pl.col("low")) & (pl.col("open") == pl.col("close"))
            ).cast(pl.Float64),
        )
        .with_columns(
            volatility_24h=pl.col("log_return").rolling_std(VOL_WINDOW, min_samples=VOL_WINDOW).over(seg),
            _gain=pl.col("log_return").clip(lower_bound=0.0),
            _loss=(-pl.col("log_return")).clip(lower_bound=0.0),
            _macd_raw=(_ema(close, MACD_FAST) - _ema(close, MACD_SLOW)).over(seg),
            _bb_mid=close.rolling_mean(BB_WINDOW, min_samples=BB_WINDOW).over(seg),
            _bb_sd=close.rolling_std(BB_WINDOW, min_samples=BB_WINDOW, ddof=0).over(seg),
        )
        .with_columns(
            # Wilder's smoothing is an EMA with alpha = 1/period.
            _avg_gain=pl.col("_gain").ewm_mean(alpha=1 / RSI_PERIOD, adjust=False, min_samples=RSI_PERIOD).over(seg),
            _avg_loss=pl.col("_loss").ewm_mean(alpha=1 / RSI_PERIOD, adjust=False, min_samples=RSI_PERIOD).over(seg),
            _macd_signal=pl.col("_macd_raw")
            .ewm_mean(span=MACD_SIGNAL, adjust=False, min_samples=MACD_SIGNAL)
            .over(seg),
        )
        .with_columns(
            rsi_14=pl.when((pl.col("_avg_gain") == 0) & (pl.col("_avg_loss") == 0))
            .then(50.0)
            .when(pl.col("_avg_loss") == 0)
            .then(100.0)
            .otherwise(100.0 - 100.0 / (1.0 + pl.col("_avg_gain") / pl.col("_avg_loss"))),
            macd=pl.col("_macd_raw") / close,
            macd_signal=pl.col("_macd_signal") / close,
            macd_hist=(pl.col("_macd_raw") - pl.col("_macd_signal")) / close,
            bb_pct_b=pl.when(pl.col("_bb_sd") > 0)
            .then((close - (pl.col("_bb_mid") - BB_K * pl.col("_bb_sd"))) / (2 * BB_K * pl.col("_bb_sd")))
            .otherwise(0.5),
            bb_bandwidth=(2 * BB_K * pl.col("_bb_sd")) / pl.col("_bb_mid"),
            hour_sin=(2 * 3.141592653589793 * pl.col("ts").dt.hour() / 24).sin(),
            hour_cos=(2 * 3.141592653589793 * pl.col("ts").dt.hour() / 24).cos(),
            dow_sin=(2 * 3.141592653589793 * (pl.col("ts").dt.weekday() - 1) / 7).sin(),
            dow_cos=(2 * 3.141592653589793 * (pl.col("ts").dt.weekday() - 1) / 7).cos(),
            _position=pl.int_range(pl.len()).over(seg),
        )
        # Rows before every indicator is warm inside their own segment are left out.
        .filter(pl.col("_position") >= WARMUP_HOURS)
        .select(list(FEATURES_SCHEMA))
        .drop_nulls()
    )
    return frame.collect().cast(FEATURES_SCHEMA)


def feature_summary(candles: pl.DataFrame, features: pl.DataFrame) -> dict[str, int]:
    """Counts for the run's metadata: rows in and out, segments, flat hours."""
    return {
        "candles": candles.height,
        "feature_rows": features.height,
        "warmup_rows_left_out": candles.height - features.height,
        "segments": int(features["segment"].n_unique()) if features.height else 0,
        "flat_hours": int(features["is_flat"].sum()) if features.height else 0,
    }
