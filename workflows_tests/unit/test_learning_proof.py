"""The pipeline learns when there is something to learn, and only then: a pass rule over
several data seeds, not one lucky seed.

Data: synthetic hours with r_t = 0.25 * r_{t-17} + e_t (the generator's default lag,
chosen off the 24 h volatility cycle so that a peak there cannot come from the daily
cycle), data seeds 1-4; and pure noise (strength 0) with the same seeds.

Pass rule (k of 4 data seeds):

* learning design (`attention_lstm`, `cpu` recipe): beats the zero-return forecast
  (one-sided Diebold-Mariano p < 0.05 on the test hours) AND the mean attention profile
  of the test windows peaks within 1 h of lag 17 at more than 1.5x the uniform weight,
  in at least 3 of 4 seeds;
* reference design (`reference_lstm`, `cpu` recipe): finds the lag by the same rule
  (peak within 1 h at more than 1.5x uniform) in at most 1 of 4 seeds;
* learning design on noise: significant skill in at most 1 of 4 seeds, and no seed
  with a peak above 1.5x uniform.

"Peak" is read from `workflows.attention.metrics.summarise` (top hour and
`profile_max_lift` of the mean profile). The full attention analysis
(`workflows.attention.analysis.analyse`) runs once, in `test_attention_analysis_agrees`,
on the first seed whose learning fit found the lag.

Sizing (12 fits, each once, cached for the module): 365 days of history, the `cpu`
recipes unchanged except at most 8 epochs (early stopping as in the recipe; the learning
fits that find the lag are still improving at epoch 8) and a 0.55 / 0.15 / 0.30
train / validation / test split instead of 0.70 / 0.15 / 0.15 (2,525 test hours for the
Diebold-Mariano test, fewer training windows per epoch), on one torch thread. Measured
on 2 shared cores: 160 s of CPU for the whole file (the 12 fits about 125 s, the one
analysis about 18 s), so about 2.7 minutes where one core is free.

Measured outcome (for orientation, not asserted): the learning design beats zero with
p < 0.001 and peaks at 17 h at 16-35x uniform in seeds 2-4; in seed 1 it stops improving
after epoch 3 with a flat profile (1.08x). The reference design stays at 1.00x uniform in
every seed; on noise no seed has p < 0.05 and no profile exceeds 1.04x.
"""

from dataclasses import dataclass, replace
from functools import cache

import numpy as np
import pytest
import torch

from workflows.attention.metrics import summarise
from workflows.data.features import compute_features
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.ml.models import ArchConfig
from workflows.ml.profiles import recipe_for
from workflows.ml.training import predict, train
from workflows.ml.windows import WindowData, build_windows
from workflows.stats.significance import DMResult, diebold_mariano

pytestmark = pytest.mark.slow

LAG, STRENGTH = 17, 0.25
SEEDS = (1, 2, 3, 4)
DAYS = 365
EPOCHS = 8
TRAIN_FRAC = 0.55
ALPHA = 0.05
MIN_LIFT = 1.5  # a mean-profile peak counts only above 1.5x the uniform weight


@dataclass(frozen=True)
class Fit:
    seed: int
    dm: DMResult  # the model against the zero-return forecast, on the test hours
    peak_hour: int  # hours ago of the mean attention profile's largest weight
    peak_lift: float  # that weight over the uniform weight
    model: torch.nn.Module
    arch: ArchConfig
    train_config: dict
    data: WindowData
    attention: np.ndarray

    @property
    def skilled(self) -> bool:
        return self.dm.p_better < ALPHA

    @property
    def finds_lag(self) -> bool:
        return abs(self.peak_hour - LAG) <= 1 and self.peak_lift > MIN_LIFT


@cache
def fit(kind: str, strength: float, seed: int) -> Fit:
    recipe = recipe_for(kind, "cpu")
    feats = compute_features(generate_candles(SyntheticSpec(days=DAYS, lag=LAG, strength=strength, seed=seed)))
    spec = replace(recipe.window_spec, train_frac=TRAIN_FRAC)
    data = build_windows(feats, spec, data_version=f"proof-{kind}-{strength}-{seed}")
    arch = ArchConfig(recipe.arch, len(recipe.features), dict(recipe.kwargs))
    config = replace(recipe.train, epochs=min(EPOCHS, recipe.train.epochs), snapshot_every=0)
    torch.manual_seed(0)
    model = train(arch.build(), data, config).model
    out = predict(model, data.test.x)
    dm = diebold_mariano(out["ret"] - data.test.ret, data.test.ret)
    summary = summarise(out["attention"])
    return Fit(
        seed,
        dm,
        summary.top_hours[0],
        summary.profile_max_lift,
        model,
        arch,
        config.to_dict(),
        data,
        out["attention"],
    )


def describe(fits: list[Fit]) -> str:
    return "; ".join(f"seed {f.seed}: p {f.dm.p_better:.3f}, peak {f.peak_hour} h at {f.peak_lift:.2f}x" for f in fits)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Fits on one thread: the same bits on any machine (intra-op parallel sums can round
    differently), and no spinning second thread on a shared 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def learned() -> list[Fit]:
    return [fit("attention_lstm", STRENGTH, s) for s in SEEDS]


@pytest.fixture(scope="module")
def reference() -> list[Fit]:
    return [fit("reference_lstm", STRENGTH, s) for s in SEEDS]


@pytest.fixture(scope="module")
def noise() -> list[Fit]:
    return [fit("attention_lstm", 0.0, s) for s in SEEDS]


def test_learning_design_beats_zero_and_finds_the_lag_in_most_seeds(learned):
    wins = [f for f in learned if f.skilled and f.finds_lag]
    assert len(wins) >= 3, describe(learned)


def test_reference_design_finds_it_in_at_most_one_seed(reference):
    assert sum(f.finds_lag for f in reference) <= 1, describe(reference)


def test_noise_shows_no_skill_and_no_concentration(noise):
    assert sum(f.skilled for f in noise) <= 1, describe(noise)
    assert all(f.peak_lift <= MIN_LIFT for f in noise), describe(noise)


def test_attention_analysis_agrees(learned, tmp_path):
    """The one test that reads the analysis API (`analyse` -> `AttentionAnalysis`): on the first
    seed whose fit found the lag, the analysis calls the attention concentrated at the lag, and
    integrated gradients put the most importance there too. Trained controls are skipped and
    the deletion / bootstrap draws reduced, for time; the verdict's lift bound is then uniform."""
    from workflows.attention.analysis import analyse
    from workflows.ml.checkpoints import load_checkpoint, save_checkpoint

    f = next(f for f in learned if f.finds_lag)
    path, _ = save_checkpoint(
        tmp_path / "m.pt", f.model, f.arch, f.data.scaler, f.data.spec_dict(), f.data.data_version, {}, f.train_config
    )
    analysis = analyse(
        load_checkpoint(path), f.data, f.attention, controls=False, attribution=True, deletion_draws=50, resamples=200
    ).analysis
    assert analysis.verdict.concentrated, analysis.verdict
    assert abs(analysis.verdict.peak_hour - LAG) <= 1, analysis.verdict
    assert analysis.attribution is not None
    assert abs(analysis.attribution.top_attributed_hour - LAG) <= 1, analysis.attribution
