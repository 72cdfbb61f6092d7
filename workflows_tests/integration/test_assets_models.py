import dagster as dg
import duckdb

from workflows.definitions import defs
from workflows.evaluation.baselines import VOL_BASELINES
from workflows.ml.checkpoints import load_checkpoint
from workflows.ml.profiles import model_kinds


def test_pipeline_trains_evaluates_and_reports_in_ci_profile(instance, data_dir):
    instance.add_dynamic_partitions("symbols", ["BTCUSDT"])
    job = defs.resolve_job_def("pipeline")
    result = job.execute_in_process(
        instance=instance,
        partition_key="BTCUSDT",
        run_config={
            "ops": {
                "candles": {"config": {"source": "synthetic", "days": 30}},
                **{f"{k}_model": {"config": {"profile": "ci"}} for k in model_kinds()},
            },
            "resources": {"warehouse": {"config": {"data_dir": str(data_dir)}}},
        },
    )
    assert result.success
    for kind in model_kinds():
        mat = result.asset_materializations_for_node(f"{kind}_model")[-1]
        meta = {k: v.value for k, v in mat.metadata.items()}
        for key in ("parameters", "epochs_run", "best_val_loss", "device", "wall_s", "samples_per_s", "sha256"):
            assert key in meta, (kind, key)
        assert meta["device"] == "cpu" and meta["profile"] == "ci"
        value = result.output_for_node(f"{kind}_model")
        ckpt = load_checkpoint(value["path"], value["sha256"])
        assert ckpt.data_version == ckpt.data_version.strip() and ckpt.data_version
        assert str(data_dir) in value["path"]
    ens = load_checkpoint(result.output_for_node("ensemble_model")["path"])
    assert isinstance(ens.arch, list) and len(ens.arch) == 5

    # evaluation, attention tensors, analysis and report follow in the same run
    evaluation = result.output_for_node("evaluation")
    assert evaluation.mode == "single_split"  # 30 days: far too short for walk-forward
    controls = {"no_attention_reference", "no_attention_lstm", "ridge_ar48", "ridge_features"}
    # the volatility model and its twin forecast variances only
    assert set(evaluation.returns) == set(model_kinds()) - {"volatility"} | controls
    assert all(0 < m.rmse_pct < 5 for m in evaluation.returns.values())
    baselines = set(VOL_BASELINES)  # the seasonal ones and HAR-X too: the features carry hours and volume
    assert set(evaluation.volatility) == baselines | {"multitask", "volatility", "no_attention_volatility"}
    assert set(evaluation.volatility_next) == baselines | {"volatility", "no_attention_volatility"}
    # 9 forecasters vs zero, 2 twins by MSE, the volatility model vs its twin by QLIKE (24 h, 1 h), the volatility
    # model vs 11 baselines x (QLIKE, MSE) x (24 h, 1 h), multitask x 11; the MSE ones descriptive (no Holm p)
    assert len(evaluation.family) == 9 + 2 + 2 + 44 + 11
    assert all(0 <= c.p_holm <= 1 for c in evaluation.family if c.family) and len(evaluation.members("")) == 22
    assert set(evaluation.confidence_sets) == {1, 24}
    tensors = result.output_for_node("attention_tensors")
    assert all(str(data_dir / "attention" / "BTCUSDT") in p for p in tensors.values())
    analysis = result.output_for_node("attention_analysis")
    assert len(analysis["transformer"].heads) == 8 and analysis["transformer"].deletion is not None
    assert analysis["transformer"].verdict.peak_lift_ci[0] <= analysis["transformer"].verdict.peak_lift
    assert len(analysis["attention_lstm"].seed_spread.members) == 5  # the ensemble's seeds of the same recipe
    report_dir = data_dir / "reports" / "BTCUSDT"
    text = (report_dir / "attention_report.md").read_text()
    assert text.startswith("# Attention report: BTCUSDT") and "SYNTHETIC" in text
    assert "**Evidence: one chronological split, the weaker kind.**" in text
    for png in (
        "forecast_skill.png",
        "attention_analysis.png",
        "attention_analysis_reference_lstm.png",
        "attention_comparison.png",
        "transformer_heads.png",
        "training.png",
        "attention_analysis_volatility.png",
        "volatility_attention.png",
        "direction_reliability.png",  # the multi-task model's probabilities (too few hours for intervals)
    ):
        assert (report_dir / png).stat().st_size > 10_000, png
        assert f"]({png})" in text
    # The event log gets the figures' paths and one thumbnail, not the images: at most 50 KB.
    event = instance.get_latest_materialization_event(dg.AssetKey("report"))
    assert 2 * len(dg.serialize_value(event)) <= 50_000  # SQLite keeps it twice: run shard and index
    shown = event.asset_materialization.metadata["report"].value
    assert shown.count("data:image/png;base64,") == 1 and str(report_dir / "training.png") in shown
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert {"evaluation", "attention_summary", "attention_metrics"} <= tables
        # 6 models, 5 trained controls (3 twins, 2 ridge), 11 volatility baselines
        assert con.execute("SELECT count(DISTINCT model) FROM evaluation").fetchone()[0] == 22
    assert "## Volatility" in text and "### Where the volatility model looks" in text
    assert analysis["volatility"].output == "vol_next" and analysis["volatility"].volatility is not None


def test_model_assets_are_in_the_gpu_pool_and_versioned():
    for kind in model_kinds():
        asset = defs.resolve_assets_def(f"{kind}_model")
        assert asset.code_versions_by_key[dg.AssetKey(f"{kind}_model")]
        assert dg.AssetKey("features") in asset.dependency_keys
        node = asset.node_def
        assert getattr(node, "pool", None) == "gpu"
