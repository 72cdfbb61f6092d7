"""One format for progress lines: what the writers format, the terminal parses back."""

from types import SimpleNamespace

from workflows.ml.progress import EpochProgress, parse_progress


def test_epoch_lines_round_trip_with_and_without_members():
    report = SimpleNamespace(epoch=3, epochs=20, train_loss=0.91, val_loss=0.8, best_val_loss=0.75, samples_per_s=512)
    single = EpochProgress.of_report(report)
    assert single.format() == "epoch 3/20: train 0.9100 val 0.8000 (best 0.7500) 512 samples/s"
    assert parse_progress(single.format()) == single
    member = EpochProgress.of_report(report, member=1, members=5)
    assert member.format().startswith("member 2/5 epoch 3/20: ")
    assert parse_progress(member.format()) == member


def test_other_lines_are_not_progress():
    for line in (
        "an ordinary info line",
        "epoch of the model: 3",
        "fold 2/4 done in 100 s: 2400 test hours",
        "BTCUSDT: incremental, 1 hours",
    ):
        assert parse_progress(line) is None
