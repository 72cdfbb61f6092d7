"""Files on disk stay bounded: the newest few checkpoints / tensors per model and symbol, never
the one the latest materialisation or the production pointer names; the report's event-log
metadata stays within its byte budget."""

import base64
import os

import numpy as np
import pytest

from workflows.data.retention import prune_versions
from workflows.reporting.preview import METADATA_BUDGET, thumbnail_png, ui_markdown


def _files(folder, names, start=1_700_000_000):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, name in enumerate(names):
        path = folder / name
        path.write_bytes(b"x")
        os.utime(path, (start + i, start + i))  # later in the list = newer
        paths.append(path)
    return paths


def test_keeps_the_newest_per_model_and_never_the_protected(tmp_path):
    folder = tmp_path / "checkpoints" / "BTCUSDT"
    lstm = _files(folder, [f"attention_lstm-v{i}-r1.pt" for i in range(6)])
    ref = _files(folder, ["reference_lstm-v0-r1.pt", "reference_lstm-v1-r1.pt"])
    other = _files(folder, ["production.json", ".attention_lstm-v9-r1.pt.123.tmp.pt"])
    serving = lstm[0]  # the oldest, but the production pointer names it
    deleted = prune_versions(folder, ".pt", keep=3, protect=[lstm[-1], serving])
    remaining = {p.name for p in folder.iterdir()}
    assert remaining == {serving.name, lstm[5].name, lstm[4].name, *(p.name for p in ref), *(p.name for p in other)}
    assert sorted(p.name for p in deleted) == sorted(p.name for p in lstm[1:4])
    # Pruning again changes nothing: the history is bounded, not shrinking each time.
    assert prune_versions(folder, ".pt", keep=3, protect=[lstm[-1], serving]) == []


def test_growth_is_bounded_over_many_retrains(tmp_path):
    folder = tmp_path / "attention" / "ETHUSDT"
    for i in range(20):
        (latest,) = _files(folder, [f"transformer-{i:04d}.npz"], start=1_700_000_000 + i)
        prune_versions(folder, ".npz", keep=2, protect=[latest])
        assert latest.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["transformer-0018.npz", "transformer-0019.npz"]


def test_keep_must_leave_the_latest(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        prune_versions(tmp_path, ".pt", keep=0)


def _big_png(path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 7), dpi=100)
    ax.imshow(np.random.default_rng(0).random((300, 300)), cmap="viridis", interpolation="nearest")
    fig.savefig(path)
    plt.close(fig)
    return path


def test_report_metadata_holds_paths_and_a_small_preview(tmp_path):
    folder = tmp_path / "reports" / "BTCUSDT"
    folder.mkdir(parents=True)
    figures = ["attention_analysis.png", "training.png"]
    for name in figures:
        _big_png(folder / name)
    text = "# Attention report\n\n" + "A sentence with its test.\n" * 400
    text += "".join(f"![caption {name}]({name})\n" for name in figures)
    embedded = text
    for name in figures:  # what the report used to put into the event log
        encoded = base64.b64encode((folder / name).read_bytes()).decode()
        embedded = embedded.replace(f"]({name})", f"](data:image/png;base64,{encoded})")
    assert len(embedded.encode()) > 10 * METADATA_BUDGET

    shown = ui_markdown(text, folder, preview="attention_analysis.png")
    assert len(shown.encode()) <= METADATA_BUDGET
    assert shown.count("data:image/png;base64,") == 1  # one thumbnail, not every figure
    for name in figures:
        assert str(folder / name) in shown
    assert "A sentence with its test." in shown


def test_report_metadata_is_cut_at_a_section_with_a_pointer_when_the_text_is_too_long(tmp_path):
    sections = [f"## Section {i}\n\n" + "word " * 1_000 + "\n" for i in range(30)]
    text = "# Report\n\n" + "\n".join(sections)
    shown = ui_markdown(text, tmp_path, preview=None)
    assert len(shown.encode()) <= METADATA_BUDGET < len(text.encode())
    assert f"the full report is `{tmp_path / 'attention_report.md'}`" in shown
    kept = shown.count("## Section ")
    assert 0 < kept < 30 and shown.count("word ") == 1_000 * kept  # whole sections only
    short = "# Report\n\n" + sections[0]
    assert ui_markdown(short, tmp_path) == short  # a short report is shown whole


def test_thumbnail_fits_its_budget(tmp_path):
    png = thumbnail_png(_big_png(tmp_path / "big.png"), budget=20_000)
    assert png is not None and len(png) <= 20_000 and png.startswith(b"\x89PNG")
