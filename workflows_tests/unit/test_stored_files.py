"""Every stored file that cannot be read says which file, what is wrong and what to do; a damaged decision
record never stops the gate or the forecast refresh; a symbol without features says how to make them."""

import json

import duckdb
import numpy as np
import pytest

from workflows.attention.extract import load_attention, save_attention
from workflows.attention.periods import load_evidence
from workflows.data.warehouse import MissingFeaturesError, load_features
from workflows.io import StoredFileError
from workflows.ml.checkpoints import load_checkpoint, save_checkpoint, timings_path
from workflows.ml.models import ArchConfig
from workflows.ml.windows import Scaler
from workflows.serving.promotion import LEDGER, POINTER, promote, read_ledger, read_pointer


def _truncate(path, keep: float = 0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.fixture
def folder(tmp_path):
    folder = tmp_path / "data" / "checkpoints" / "BTCUSDT"
    folder.mkdir(parents=True)
    return folder


def _checkpoint(folder):
    arch = ArchConfig("reference_lstm", 3, {"hidden": 8})
    scaler = Scaler([0.0] * 3, [1.0] * 3, 1.0)
    metrics = {"best_val_loss": 1.0, "wall_s": 3.5, "history": [{"epoch": 1, "seconds": 3.5, "val_loss": 1.0}]}
    return save_checkpoint(folder / "multitask-v-r.pt", arch.build(), arch, scaler, {}, "v", metrics, {})


def test_a_truncated_production_pointer_names_the_file_and_the_remedy(folder):
    (folder / POINTER).write_text(json.dumps({"path": "multitask-x.pt", "sha256": "ab" * 32})[:20])
    with pytest.raises(StoredFileError) as caught:
        read_pointer(folder)
    message = str(caught.value)
    assert message.startswith(f"{folder / POINTER}: the production pointer cannot be read (JSONDecodeError: ")
    assert "delete it to serve the zero-return forecast" in message and "reports/BTCUSDT/promotion_gate.md" in message
    (folder / POINTER).write_text(json.dumps({"sha256": "ab"}))  # parses, but names no checkpoint
    with pytest.raises(StoredFileError, match="the production pointer cannot be read \\(it lacks path\\)"):
        read_pointer(folder)


def test_a_truncated_gate_ledger_decides_nothing_names_the_file_and_keeps_what_serves(folder):
    ledger = folder / LEDGER
    ledger.write_text(json.dumps({"tests": [{"k": 1, "candidate_sha256": "ab", "comparator": "zero"}]}))
    assert read_ledger(folder)[0]["k"] == 1
    ledger.write_text(ledger.read_text()[:20])
    with pytest.raises(StoredFileError) as caught:
        read_ledger(folder)
    assert str(caught.value).startswith(f"{ledger}: the gate's ledger cannot be read (JSONDecodeError: ")
    assert "restore it from a backup" in str(caught.value)

    def judge(_current, _k):
        raise AssertionError("nothing is judged while the ledger cannot be read")

    decision, pointer = promote(folder, str(folder / "multitask-x.pt"), "cd" * 32, judge)  # no exception
    assert not decision.promoted and not decision.decided and pointer is None
    assert decision.reason.startswith(f"not decided: {ledger}: the gate's ledger cannot be read")
    assert ledger.read_text() == json.dumps({"tests": [{"k": 1, "candidate_sha256": "ab", "comparator": "zero"}]})[:20]


def test_a_truncated_checkpoint_names_the_command_that_rebuilds_it(folder):
    path, sha = _checkpoint(folder)
    _truncate(path)
    with pytest.raises(StoredFileError) as caught:
        load_checkpoint(path)
    assert str(caught.value).startswith(f"{path}: the checkpoint cannot be read (")
    assert "`workflows run --symbol BTCUSDT`" in str(caught.value)
    with pytest.raises(StoredFileError, match=r"does not match the expected .*: changed or truncated\); delete it"):
        load_checkpoint(path, sha)


def test_a_damaged_timings_sidecar_leaves_the_checkpoint_usable_without_timings(folder):
    path, sha = _checkpoint(folder)
    assert load_checkpoint(path, sha).metrics["wall_s"] == 3.5
    _truncate(timings_path(path))
    ckpt = load_checkpoint(path, sha)
    assert "wall_s" not in ckpt.metrics  # not recorded, rather than a wrong figure
    assert ckpt.metrics["history"] == [{"epoch": 1, "val_loss": 1.0}]  # the losses, without the clock


def test_truncated_attention_files_of_both_kinds_name_the_asset_that_rewrites_them(tmp_path):
    tensors = tmp_path / "data" / "attention" / "BTCUSDT" / "multitask-abc.npz"
    save_attention(tensors, np.arange(4).astype("datetime64[h]"), np.full((4, 48), 1 / 48))
    assert load_attention(tensors)["attention"].shape == (4, 48)
    _truncate(tensors)
    with pytest.raises(StoredFileError) as caught:
        load_attention(tensors)
    assert str(caught.value).startswith(f"{tensors}: the attention tensors cannot be read (BadZipFile: ")
    assert str(caught.value).endswith("rematerialise attention_tensors for BTCUSDT (it is recomputed)")

    evidence = tmp_path / "data" / "evidence" / "BTCUSDT" / "2025-11-01" / "multitask.npz"
    evidence.parent.mkdir(parents=True)
    np.savez_compressed(evidence, end_ts=np.arange(3))  # readable, but not an evidence file (no reading)
    with pytest.raises(StoredFileError, match="cannot be read \\(KeyError: 'reading_text'\\)"):
        load_evidence(evidence)
    _truncate(evidence)
    with pytest.raises(StoredFileError) as caught:
        load_evidence(evidence)
    message = str(caught.value)
    assert message.startswith(f"{evidence}: the period's attention evidence cannot be read (BadZipFile: ")
    assert "rematerialise period_attention for BTCUSDT, period 2025-11-01" in message


def test_a_symbol_without_features_says_how_to_make_them(tmp_path):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con, pytest.raises(MissingFeaturesError) as caught:
        load_features(con, "SOLUSDT")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'warehouse.duckdb'}: no feature rows for SOLUSDT (table `features`)")
    assert "`workflows run --symbol SOLUSDT`" in message


def test_a_truncated_resume_file_restarts_the_training_with_a_warning_not_a_crash(tmp_path, one_thread):
    from dataclasses import replace

    import torch

    from workflows.data.features import compute_features
    from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
    from workflows.ml.training import TrainConfig, train
    from workflows.ml.windows import WindowSpec, build_windows

    data = build_windows(compute_features(generate_candles(SyntheticSpec(days=40, seed=4))), WindowSpec(), "t")
    arch = ArchConfig("reference_lstm", 3, {"hidden": 8})
    config = replace(TrainConfig(epochs=2, patience=0, snapshot_every=0), seed=0)
    resume = tmp_path / "m.resume.pt"
    torch.manual_seed(0)
    fresh = train(arch.build(), data, config)
    resume.write_bytes(b"PK\x03\x04 half a resume file")
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="resume state cannot be read") as seen:
        resumed = train(arch.build(), data, config, resume_path=resume)
    assert str(seen[0].message).startswith(f"{resume}: the training's resume state cannot be read (")
    assert "training starts from its first epoch" in str(seen[0].message)
    assert resumed.epochs_run == 2 and [h["val_loss"] for h in resumed.history] == [
        h["val_loss"] for h in fresh.history
    ]
