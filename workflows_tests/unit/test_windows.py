import numpy as np
import polars as pl
import pytest

from workflows.data.features import compute_features
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.ml.windows import DOWN, STABLE, UP, WindowSpec, build_windows, direction_classes


@pytest.fixture(scope="module")
def feats():
    return compute_features(generate_candles(SyntheticSpec(days=40, seed=2)))


def test_shapes_and_targets(feats):
    data = build_windows(feats, WindowSpec())
    for split in (data.train, data.val, data.test):
        assert split.x.shape[1:] == (48, 3) and split.x.dtype == np.float32
        assert len(split.ret) == len(split.vol) == len(split.direction) == len(split.x)
        assert (split.vol > 0).all()
    # the return target of the window ending at t is the log return of hour t + 1
    ts = feats["ts"].to_list()
    t = data.train.end_ts[10]
    row = ts.index(t.astype("datetime64[us]").item().replace(tzinfo=ts[0].tzinfo))
    assert data.train.raw_ret[10] == pytest.approx(feats["log_return"][row + 1])
    assert data.train.ret[10] == pytest.approx(feats["log_return"][row + 1] / data.scaler.target_scale, rel=1e-5)


def test_splits_are_chronological_with_embargo(feats):
    data = build_windows(feats, WindowSpec())
    hours = lambda s: s.end_ts.astype("datetime64[h]").astype(np.int64)  # noqa: E731
    tr, va, te = hours(data.train), hours(data.val), hours(data.test)
    # no input hour (t-47..t) of a later split overlaps a target hour (..t+24) of an earlier one
    assert va.min() - 47 > tr.max() + 24
    assert te.min() - 47 > va.max() + 24
    assert len(data.train) > len(data.val) > 0 and len(data.test) > 0


def test_scaler_is_fitted_on_train_only(feats):
    data = build_windows(feats, WindowSpec())
    cut = data.train.end_ts.max()
    changed = feats.with_columns(
        log_volume=pl.when(pl.col("ts") > pl.lit(cut).cast(pl.Datetime("us", "UTC")))
        .then(pl.col("log_volume") * 10)
        .otherwise(pl.col("log_volume"))
    )
    other = build_windows(changed, WindowSpec())
    assert other.scaler.mean == data.scaler.mean and other.scaler.std == data.scaler.std
    np.testing.assert_array_equal(other.train.x, data.train.x)


def test_no_window_spans_a_gap(feats):
    holey = compute_features(generate_candles(SyntheticSpec(days=40, seed=2)).filter(pl.int_range(pl.len()) != 300))
    data = build_windows(holey, WindowSpec())
    gap_hour = np.datetime64(generate_candles(SyntheticSpec(days=40, seed=2))["ts"][300].replace(tzinfo=None), "h")
    for split in (data.train, data.val, data.test):
        ends = split.end_ts.astype("datetime64[h]")
        # the missing hour is neither inside a window nor among its 24 target hours
        assert not np.any((ends - 47 <= gap_hour) & (gap_hour <= ends + 24))


def test_direction_classes():
    r = np.array([-0.01, -0.005, 0.0, 0.004, 0.0051, 0.02])
    assert direction_classes(r, 0.005).tolist() == [DOWN, STABLE, STABLE, STABLE, UP, UP]


def test_too_little_history_is_a_clear_error(feats):
    with pytest.raises(ValueError, match="complete 48-hour windows"):
        build_windows(feats.head(100), WindowSpec())
