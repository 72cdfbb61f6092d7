"""Every generated verdict sentence reads right in each case: the bottom line and the recommendations for
each combination of models and controls that do and do not beat the zero-return forecast, and the
volatility sentences for each combination of baselines beaten, not told apart and better."""

import itertools

import numpy as np
import pytest

from workflows.evaluation.evidence import (
    Comparison,
    Evaluation,
    FoldSpan,
    ForecastSet,
    evaluate_forecasts,
)
from workflows.evaluation.evidence import tests_words as named_tests  # not collected as a test
from workflows.reporting.report import bottom_line, recommendations
from workflows.reporting.volatility_text import comparison_sentence
from workflows.stats.significance import DMResult


def _evaluation(models_win: tuple[bool, bool], controls_win: tuple[bool, bool]) -> Evaluation:
    """Two models and two controls; a winner carries most of a strong predictable component, a loser is
    noise ten times larger than it (worse than zero, never significant)."""
    rng = np.random.default_rng(0)
    n = 2_000
    signal = rng.normal(0, 0.004, n)
    fs = ForecastSet(
        end_ts=np.arange(n).astype("datetime64[h]").astype("datetime64[us]"),
        fold=np.ones(n, int),
        actual=signal + rng.normal(0, 0.004, n),
        train_mean=np.zeros(n),
        realised_var=np.full(n, 0.004**2),
    )
    names = ("attention_lstm", "transformer", "ridge_ar48", "ridge_features")
    for name, wins in zip(names, (*models_win, *controls_win)):
        fs.returns[name] = 0.9 * signal if wins else rng.normal(0, 0.04, n)
    info = [FoldSpan(fold=1, test_start="a", test_end="b", train_windows=1, train_start="x", train_end="y")]
    return evaluate_forecasts(fs, "test", info, {})


@pytest.mark.parametrize(
    ("models_win", "controls_win"), list(itertools.product([(False, False), (True, False), (True, True)], repeat=2))
)
def test_bottom_line_and_recommendations_read_right_for_every_combination(models_win, controls_win):
    ev = _evaluation(models_win, controls_win)
    models = [m for m, w in zip(("attention_lstm", "transformer"), models_win) if w]
    controls = [c for c, w in zip(("ridge_ar48", "ridge_features"), controls_win) if w]
    assert sorted(c.model for c in ev.survivors("vs zero")) == sorted(models + controls)
    line = bottom_line(ev)
    recs = " ".join(recommendations(ev, {}))
    family = "Holm-corrected within the return skill family of 4 tests"
    if not models and not controls:
        assert "no model and no control beats the zero-return forecast" in line
        assert "do not act on the models' return forecasts" in recs and "control" not in recs
    elif models and not controls:
        verb = "beats" if len(models) == 1 else "beat"
        assert f"{' and '.join(models)} {verb} the zero-return forecast; no control does ({family}" in line
        assert "Confirm on a later, untouched period" in recs and "control" not in recs
    elif models and controls:
        ctrl = "does the control" if len(controls) == 1 else "do the controls"
        assert f"the zero-return forecast, and so {ctrl} {' and '.join(controls)}" in line
        assert f"{' and '.join(controls)} also beat" in recs and "before crediting their architecture" in recs
    else:  # the case that read "no model beats the zero-return forecast; so do the controls ..."
        assert "no model beats the zero-return forecast, but the control" in line
        assert "so do the controls" not in line and f"{' and '.join(controls)} do" in line
        assert "structure the models miss" in line
        assert "do not act on the models' return forecasts" in recs and "the networks miss" in recs
    for loser in {"attention_lstm", "transformer", "ridge_ar48", "ridge_features"} - set(models + controls):
        assert loser not in line


def _dm(p_better: float) -> DMResult:
    stat = float(np.sign(0.5 - p_better))
    return DMResult(
        stat, p_better, 2 * min(p_better, 1 - p_better), 8_640, 0.0, "Ibragimov-Mueller (12 periods)", 12, 0.001, 11
    )


def _vol_evaluation(beaten: int, same: int, worse: int) -> Evaluation:
    """The volatility model against baselines it beats (Holm p 0.001), cannot tell apart (p 0.4) and is
    worse than (the reverse test's Holm p 0.001); every baseline's mean loss 0.5."""
    family = []
    for i in range(beaten):
        family.append(Comparison("volatility", "volatility", f"b{i}", "QLIKE", 24, 0.1, _dm(0.0001), 0.001, 0.5, 1.0))
    for i in range(same):
        family.append(Comparison("volatility", "volatility", f"s{i}", "QLIKE", 24, 0.01, _dm(0.4), 1.0, 0.5, 1.0))
    for i in range(worse):
        family.append(Comparison("volatility", "volatility", f"w{i}", "QLIKE", 24, -0.71, _dm(0.9999), 1.0, 0.5, 0.001))
    return Evaluation("", 1_000, "a", "b", {}, {}, family, [], {})


@pytest.mark.parametrize(("beaten", "same", "worse"), [c for c in itertools.product([0, 2], repeat=3) if any(c)])
def test_volatility_sentence_reads_right_for_every_combination(beaten, same, worse):
    """ "beats" only where the one-sided test survives Holm; "worse" where the reverse test survives the same
    correction (a model 71% worse is never "no difference"); otherwise "not shown to differ", each with its
    skill and the skill the test resolves; never "no difference"."""
    text = comparison_sentence(_vol_evaluation(beaten, same, worse), "volatility", 24) or ""
    n = beaten + same + worse
    assert f"Holm-corrected within the volatility family of {n} tests" in text
    assert "t-test on the 12 monthly periods' mean differences, Ibragimov-Mueller, t(11)" in text
    assert "no difference" not in text
    if beaten:
        assert "beats b0, b1" in text and "beats no baseline" not in text
    else:
        assert "beats no baseline" in text
    if same:
        # resolvable: (t_0.95(11) + t_0.8(11)) standard errors (1.796 + 0.876) x 0.001 over the mean loss 0.5
        assert "is not shown to differ from s0 (skill +1.00%, the hours resolve about 0.5%), s1 (" in text
    else:
        assert "not shown to differ" not in text
    if worse:
        assert "is worse than w0 (skill -71.00%), w1 (skill -71.00%) (the reverse one-sided test" in text
    else:
        assert "worse" not in text


def test_a_significantly_worse_model_is_worse_in_the_family_not_no_difference():
    from workflows.evaluation.evidence import ForecastSet, build_family

    rng = np.random.default_rng(0)
    n = 720 * 12
    realised = np.exp(rng.normal(0, 1, n)) * 1e-4
    fs = ForecastSet(np.arange(n).astype("datetime64[h]"), np.arange(n) // 720 + 1, np.zeros(n), np.zeros(n), realised)
    fs.vol_var = {"volatility": realised * np.exp(rng.normal(0, 1.2, n)), "constant": np.full(n, realised.mean())}
    fs.next_var = {}
    worse = [c for c in build_family(fs) if c.loss == "QLIKE" and c.baseline == "constant"]
    assert worse and all(c.worse and not c.survives and c.dm.periods == 12 for c in worse)
    text = comparison_sentence(Evaluation("", n, "a", "b", {}, {}, worse, [], {}), "volatility", 24)
    assert "is worse than constant training variance (skill -" in (text or "")


def test_twin_sentence_says_worse_or_not_shown_to_differ_with_what_the_hours_resolve():
    from workflows.reporting.report import twin_sentence

    worse = Comparison(
        "attention vs twin", "attention_lstm", "no_attention_lstm", "MSE", 1, -0.05, _dm(0.9999), 1.0, 0.5, 0.002
    )
    unclear = Comparison(
        "attention vs twin", "attention_lstm", "no_attention_lstm", "MSE", 1, 0.01, _dm(0.4), 1.0, 0.5, 1.0
    )
    ev = Evaluation("", 8_640, "a", "b", {}, {}, [worse], [], {})
    text = twin_sentence(worse, ev)
    assert (
        "no, the model with attention is worse (its MSE is 5.00% higher than the twin's; the reverse one-sided" in text
    )
    assert "Holm-adjusted p = 0.002" in text
    text = twin_sentence(unclear, ev)
    assert "not shown to differ (its MSE is 1.00% lower than the twin's;" in text
    assert "the hours resolve a skill of about 0.5%" in text and "worse" not in text


def test_the_tests_behind_a_sentence_are_named_once_with_the_memory_estimates_as_a_range():
    def dm(variance: str, memory: float | None = None) -> DMResult:
        return DMResult(0.0, 0.5, 1.0, 720, 0.0, variance=variance, memory=memory)

    mac = [dm(f"MAC (d = {d:.2f})", d) for d in (0.04, -0.12, 0.30)]
    assert named_tests([dm("HLN"), *mac, dm("HLN")]) == (
        "HLN variance; memory and autocorrelation consistent variance, MAC (d from -0.12 to 0.30), standard normal"
    )
    assert named_tests(mac[:1]) == "memory and autocorrelation consistent variance, MAC (d = 0.04), standard normal"
