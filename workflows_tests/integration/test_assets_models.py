"""The model assets train nothing: each names its kind's model of the newest stored forecast period, and with
none stored it fails, saying how much more history a period needs."""

import dagster as dg

from workflows.definitions import defs
from workflows.ml.profiles import model_kinds


def _failures(result) -> dict[str, str]:
    out = {}
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None and event.step_failure_data.error:
            out[event.step_key] = event.step_failure_data.error.message
    return out


def test_a_history_too_short_for_a_period_says_how_much_more_it_needs(instance, data_dir):
    instance.add_dynamic_partitions("symbols", ["BTCUSDT"])
    result = defs.resolve_job_def("pipeline").execute_in_process(
        instance=instance,
        partition_key="BTCUSDT",
        run_config={
            "ops": {"candles": {"config": {"source": "synthetic", "days": 30}}},
            "resources": {"warehouse": {"config": {"data_dir": str(data_dir)}}},
        },
        raise_on_error=False,
    )
    assert not result.success
    failed = _failures(result)
    assert set(failed) == {f"{kind}_model" for kind in model_kinds()}  # nothing downstream ran
    message = failed["attention_lstm_model"]
    assert "no forecast period of BTCUSDT is stored" in message
    # 30 days, all in December 2025: its period needs 60 training days ending 20 days before December 1
    assert "hold no forecast period" in message and "land 85 more days of earlier history" in message
    assert not (data_dir / "checkpoints").exists() or not list((data_dir / "checkpoints").rglob("*.pt"))


def test_model_assets_are_in_the_gpu_pool_and_versioned():
    for kind in model_kinds():
        asset = defs.resolve_assets_def(f"{kind}_model")
        assert asset.code_versions_by_key[dg.AssetKey(f"{kind}_model")]
        assert dg.AssetKey("features") in asset.dependency_keys
        assert dg.AssetKey(f"{kind}_period_model") in asset.dependency_keys
        node = asset.node_def
        assert getattr(node, "pool", None) == "gpu"
