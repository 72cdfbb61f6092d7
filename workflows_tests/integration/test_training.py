from dataclasses import replace

import numpy as np
import pytest
import torch

from workflows.data.features import compute_features
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.ml.checkpoints import load_checkpoint, save_checkpoint
from workflows.ml.models import ArchConfig
from workflows.ml.pipeline import fit
from workflows.ml.profiles import model_kinds, recipe_for
from workflows.ml.training import TrainConfig, predict, select_device, train
from workflows.ml.windows import WindowSpec, build_windows
from workflows_tests.helpers import HANG_GUARD_S, PROJECT_ROOT


@pytest.fixture(scope="module")
def data():
    feats = compute_features(generate_candles(SyntheticSpec(days=60, lag=1, strength=0.6, seed=4)))
    return build_windows(feats, WindowSpec(), data_version="test")


def small(name="query_attention_lstm"):
    kwargs = {"query_attention_lstm": {"hidden": 16, "d_attn": 8}, "reference_lstm": {"hidden": 16}}[name]
    return ArchConfig(name, 3, kwargs)


CFG = TrainConfig(epochs=4, batch_size=64, patience=0, snapshot_every=2)


def test_loss_falls_on_a_learnable_signal(data):
    torch.manual_seed(0)
    result = train(small().build(), data, replace(CFG, epochs=8))
    losses = [h["val_loss"] for h in result.history]
    assert min(losses[1:]) < losses[0]
    assert result.best_val_loss < float(np.mean(data.val.ret**2))  # beats the zero forecast
    assert result.device == "cpu" and result.samples_per_s > 0


def test_resumed_training_equals_uninterrupted(data, tmp_path):
    torch.manual_seed(0)
    full = train(small().build(), data, CFG)

    class Interrupt(Exception):
        pass

    def crash_after_two(report):
        if report.epoch == 2:
            raise Interrupt

    resume = tmp_path / "resume.pt"
    torch.manual_seed(0)
    with pytest.raises(Interrupt):
        train(small().build(), data, CFG, callback=crash_after_two, resume_path=resume)
    assert torch.load(resume, weights_only=True)["epoch"] == 2
    torch.manual_seed(123)  # a fresh process: different initial weights, restored from the file
    resumed = train(small().build(), data, CFG, resume_path=resume)
    assert resumed.epochs_run == full.epochs_run == 4
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in full.history]
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_training_is_deterministic_on_cpu(data):
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        runs.append(train(small("reference_lstm").build(), data, replace(CFG, epochs=2)))
    assert runs[0].history[-1]["val_loss"] == runs[1].history[-1]["val_loss"]


def test_checkpoint_reloads_to_identical_predictions(data, tmp_path):
    arch = small()
    torch.manual_seed(0)
    result = train(arch.build(), data, replace(CFG, epochs=2))
    path, digest = save_checkpoint(
        tmp_path / "m.pt",
        result.model,
        arch,
        data.scaler,
        data.spec_dict(),
        "v1",
        result.metrics(),
        CFG.to_dict(),
        result.snapshots,
    )
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind
    ckpt = load_checkpoint(path, expected_sha256=digest)
    np.testing.assert_array_equal(predict(result.model, data.test.x)["ret"], predict(ckpt.model, data.test.x)["ret"])
    assert ckpt.scaler == data.scaler and ckpt.data_version == "v1"
    assert ckpt.snapshots and ckpt.snapshots[0][1].shape[1] == 48
    with pytest.raises(ValueError, match="does not match"):
        load_checkpoint(path, expected_sha256="0" * 64)


_LOAD_WITHOUT_CUDA = """
import sys
import numpy as np
import torch
from workflows.ml.checkpoints import load_checkpoint
from workflows.ml.training import predict
assert not torch.cuda.is_available(), "CUDA_VISIBLE_DEVICES='' should hide every GPU"
x = np.load(sys.argv[1])
for path, out in zip(sys.argv[2::2], sys.argv[3::2]):
    ckpt = load_checkpoint(path)
    assert all(p.device.type == "cpu" for p in ckpt.model.parameters())
    np.save(out, predict(ckpt.model, x)["ret"])
try:
    torch.load(sys.argv[-2], weights_only=True)  # the old-style file, without map_location
except RuntimeError as exc:
    assert "CUDA" in str(exc), exc
else:
    raise AssertionError("the old-style file did not hold CUDA storages")
"""


def test_cuda_checkpoint_loads_on_cpu(data, tmp_path):
    """A model trained on CUDA, saved both ways (the current checkpoint, whose weights are moved to CPU,
    and an old-style file holding the CUDA tensors themselves), loads in a process that sees no GPU and
    predicts what the trained model predicts."""
    if not torch.cuda.is_available():
        pytest.skip(
            "no CUDA device: torch.cuda.is_available() is False, so no model can really be trained on a GPU "
            "here (test_checkpoint_with_cuda_tagged_storages_loads_on_cpu checks the file side on CPU)"
        )
    import os
    import subprocess
    import sys

    arch = small()
    torch.manual_seed(0)
    result = train(arch.build(), data, replace(CFG, epochs=1, device="cuda"))
    assert all(p.device.type == "cuda" for p in result.model.parameters())
    path, _ = save_checkpoint(tmp_path / "m.pt", result.model, arch, data.scaler, data.spec_dict(), "v", {}, {}, [])
    old = tmp_path / "old.pt"
    payload = torch.load(path, weights_only=True)  # no map_location: tensors come back where they were saved
    assert all(t.device.type == "cpu" for t in payload["state_dict"].values())  # save_checkpoint moved them
    payload["state_dict"] = dict(result.model.state_dict())  # CUDA tensors, as a pre-`_cpu_state` file held
    assert all(t.device.type == "cuda" for t in payload["state_dict"].values())
    torch.save(payload, old)
    x = data.test.x[:64]
    np.save(tmp_path / "x.npy", x)
    outs = [tmp_path / "new_ret.npy", tmp_path / "old_ret.npy"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    args = [str(tmp_path / "x.npy"), str(path), str(outs[0]), str(old), str(outs[1])]
    root = PROJECT_ROOT
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_WITHOUT_CUDA, *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    expected = predict(result.model, x, device="cpu")["ret"]  # the trained weights, moved to CPU here
    for out in outs:
        np.testing.assert_allclose(np.load(out), expected, rtol=1e-5, atol=1e-7)


def test_checkpoint_with_cuda_tagged_storages_loads_on_cpu(data, tmp_path, monkeypatch):
    """The file side of CUDA-to-CPU loading, on any machine: a checkpoint whose every storage is recorded
    as on "cuda:0" (what torch.save writes for tensors on a GPU; here the tag is forced at save time, the
    bytes are the real weights) loads with `load_checkpoint` onto the CPU with identical predictions.
    Without CUDA, a plain torch.load of the same file fails, which shows the tags are really there.
    This does not train on a GPU; test_cuda_checkpoint_loads_on_cpu does, where one exists."""
    arch = small()
    torch.manual_seed(0)
    model = arch.build()
    path, _ = save_checkpoint(tmp_path / "m.pt", model, arch, data.scaler, data.spec_dict(), "v", {}, {}, [])
    payload = torch.load(path, weights_only=True)
    with monkeypatch.context() as patched:
        patched.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(payload, path)
    if torch.cuda.is_available():
        raw = torch.load(path, weights_only=True)
        assert all(t.device.type == "cuda" for t in raw["state_dict"].values())
    else:
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)
    ckpt = load_checkpoint(path)
    assert all(p.device.type == "cpu" for p in ckpt.model.parameters())
    x = data.test.x[:64]
    np.testing.assert_array_equal(predict(ckpt.model, x)["ret"], predict(model, x)["ret"])


def test_device_selection():
    assert select_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        expected = "mps"
    assert select_device("auto").type == expected


@pytest.mark.parametrize("kind", model_kinds())
def test_every_kind_trains_in_the_ci_profile(kind, tmp_path):
    feats = compute_features(generate_candles(SyntheticSpec(days=30, seed=1)))
    recipe = recipe_for(kind, "ci")
    data = build_windows(feats, recipe.window_spec, data_version="ci")
    epochs = []
    result = fit(recipe, data, tmp_path, kind, callback=lambda member, report: epochs.append((member, report.epoch)))
    assert len(epochs) == recipe.train.epochs * recipe.members
    ckpt = load_checkpoint(result.checkpoint, result.sha256)
    out = predict(ckpt.model, data.test.x[:7])
    assert out["ret"].shape == (7,)
    np.testing.assert_allclose(out["attention"].sum(-1), 1.0, rtol=1e-5)
    assert result.metrics.parameters > 0 and result.metrics.epochs_run == len(epochs)
    assert ckpt.training == result.metrics  # the checkpoint stores it flat and reads it back typed
    assert [h.epoch for h in ckpt.training.history] == list(range(1, recipe.train.epochs + 1))
    assert not list((tmp_path / ".resume").glob("*"))  # resume files are cleaned up
