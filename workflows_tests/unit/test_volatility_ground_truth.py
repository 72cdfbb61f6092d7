"""Ground truth for the volatility attention: on synthetic hours with GARCH(1,1) volatility clustering and an
intraday volatility cycle (`workflows.data.sources.synthetic`), the volatility model attends to the most recent
hours and to 24 hours ago beyond the controls, and the report says so; the same architecture trained on
shuffled targets does not.

Pass rule over 3 data seeds (not one lucky seed), 365 days each, the `ci` recipe on one torch thread:
* the trained volatility model marks both lag groups ("last 3 h", "23-25 h ago": lift interval above 1 and
  above the untrained and shuffled-target controls' intervals), its mean profile peaks within the last
  3 hours, and the report's sentence names both groups, in at least 2 of 3 seeds;
* the shuffled-target model, read against the untrained one, marks both groups in no seed.

Measured (for orientation, not asserted; seeds 1-4): both groups marked in all four, lifts 1.13-1.20x for
the last 3 h and 1.03-1.07x for 23-25 h ago; rank correlation with the autocorrelation of |r| 0.80-0.90
against at most 0.39 for the controls.
"""

import pytest

from workflows.attention.analysis import analyse
from workflows.attention.volatility import volatility_attention
from workflows.data.features import compute_features
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.ml.checkpoints import load_checkpoint
from workflows.ml.pipeline import fit
from workflows.ml.predictions import predictions
from workflows.ml.profiles import recipe_for
from workflows.ml.windows import build_windows
from workflows.reporting.volatility_text import attention_sentence

SEEDS = (1, 2, 3)


def _one_seed(seed: int, tmp_path):
    feats = compute_features(generate_candles(SyntheticSpec(days=365, seed=seed)))
    recipe = recipe_for("volatility", "ci")
    data = build_windows(feats, recipe.window_spec, data_version=f"gt-{seed}")
    ckpt = load_checkpoint(fit(recipe, data, tmp_path / str(seed), "volatility").checkpoint)
    attention = predictions(ckpt, data).attention
    cache: dict = {}
    an = analyse(
        ckpt, data, attention, attribution=False, deletion_draws=20, resamples=200, control_cache=cache
    ).analysis
    (controls,) = cache.values()
    shuffled = volatility_attention(
        controls["shuffled_targets"]["attention"],
        {"untrained": controls["untrained"]["attention"]},
        data.test.end_ts,
        data.train.end_ts,
        data.train.raw_ret,
        resamples=200,
    )
    return an, shuffled


@pytest.mark.slow
def test_volatility_attention_finds_recent_hours_and_the_daily_lag_and_shuffled_targets_do_not(tmp_path, one_thread):
    found, shuffled_found = 0, 0
    for seed in SEEDS:
        an, shuffled = _one_seed(seed, tmp_path)
        v = an.volatility
        assert an.output == "vol_next" and v is not None
        both = all(g.marked for g in v.groups)
        peak_recent = max(range(len(v.profile)), key=v.profile.__getitem__) < 3
        said = "attends to last 3 h and 23-25 h ago beyond uniform and the controls' intervals" in attention_sentence(v)
        found += both and peak_recent and said
        shuffled_found += all(g.marked for g in shuffled.groups)
        assert v.spearman > max(v.control_spearman.values())  # closer to volatility's memory than the controls
    assert found >= 2
    assert shuffled_found == 0
