from dataclasses import replace
from typing import get_args

import numpy as np
from PIL import Image

from workflows.attention import metrics as am
from workflows.ml.profiles import PROFILES, ProfileChoice
from workflows.reporting import figures
from workflows.reporting.attention_text import (
    attention_recommendations,
    attention_sections,
    attention_sentence,
    bucket_sentence,
)
from workflows.reporting.report import (
    ReportInputs,
    calibration_table,
    forecast_sentence,
    profiles_note,
    write_report,
)

T = 48


def fake_attention(peak: int | None, n: int = 60, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 0.05, (n, T))
    if peak is not None:
        logits[:, T - peak] += 4.0
    w = np.exp(logits)
    return w / w.sum(axis=1, keepdims=True)


def analysis_for(attention: np.ndarray, control: np.ndarray):
    """An `AttentionAnalysis` from the maps alone (no model checks), with one control."""
    from workflows.attention.analysis import describe

    return describe(attention, {"untrained": {"attention": control}}, resamples=300)


def evaluation(signal_share: float, n: int, seed: int = 0):
    """An `Evaluation` of one model on n hours whose forecast carries `signal_share` of a
    predictable component (0 = pure noise forecast)."""
    from workflows.evaluation.evidence import FoldSpan, ForecastSet, evaluate_forecasts

    rng = np.random.default_rng(seed)
    signal = rng.normal(0, 0.002, n)
    actual = signal + rng.normal(0, 0.006, n)
    fs = ForecastSet(
        end_ts=np.arange(n).astype("datetime64[h]").astype("datetime64[us]"),
        fold=np.ones(n, int),
        actual=actual,
        train_mean=np.zeros(n),
        realised_var=np.full(n, 0.006**2),
    )
    fs.returns["reference_lstm"] = signal_share * signal + (1 - signal_share) * rng.normal(0, 0.0005, n)
    info = [FoldSpan(fold=1, test_start="a", test_end="b", train_windows=1, train_start="x", train_end="y")]
    return evaluate_forecasts(fs, "one split", info, {})


def test_attention_figure_has_seven_panels_and_expected_size(tmp_path):
    attention = fake_attention(24)
    path, panels = figures.attention_analysis_figure(
        attention,
        am.summarise(attention),
        "test",
        tmp_path / "a.png",
        {"untrained": am.summarise(fake_attention(None))},
    )
    assert panels == 7
    with Image.open(path) as img:
        assert img.size == (1800, 1300)
        pixels = np.asarray(img.convert("L"))
    assert pixels.std() > 10  # not a blank canvas


def test_transformer_heads_figure_one_panel_per_head(tmp_path):
    maps = np.stack([fake_attention(h % 48 + 1, n=10)[:, None, :] for h in range(8)], axis=2)  # (N, 1, 8, T)
    path, panels = figures.transformer_heads_figure(maps, tmp_path / "h.png", "heads")
    assert panels == 8 and path.stat().st_size > 5000


def test_wording_follows_the_numbers():
    peaked = analysis_for(fake_attention(24), fake_attention(None, seed=1))
    flat = analysis_for(fake_attention(None, seed=2), fake_attention(None, seed=3))
    assert "concentrates its attention on **24 hours ago**" in attention_sentence("m", peaked)
    assert "no preference beyond uniform" in attention_sentence("m", flat)
    assert "no bias toward recent or old hours" in bucket_sentence("m", flat)
    strong = forecast_sentence("reference_lstm", evaluation(1.0, n=3000))
    assert "beats the zero-return forecast: skill +" in strong and "Holm-adjusted p" in strong
    weak = forecast_sentence("reference_lstm", evaluation(0.0, n=300))
    assert "no evidence" in weak and "8.2%" in weak  # 300 hours cannot resolve a skill below 8.2%


def test_report_never_claims_what_it_cannot_show():
    flat = analysis_for(fake_attention(None, seed=2), fake_attention(None, seed=3))
    text = write_report(
        ReportInputs(
            "BTCUSDT",
            "SYNTHETIC data",
            evaluation(0.0, n=300),
            {"reference_lstm": flat},
            {"panels": "attention_analysis.png"},
            profile="ci",
        )
    )
    lowered = text.lower()
    for banned in ("converged", "detects a cycle", "2-day cycle", "historical bias"):
        assert banned not in lowered
    assert "do not act on the models' return forecasts" in text
    assert text.startswith("# Attention report: BTCUSDT")
    assert "![panels](attention_analysis.png)" in text


def test_concentrated_but_unused_attention_is_called_a_quirk():
    peaked = analysis_for(fake_attention(48), fake_attention(None, seed=1))
    peaked.verdict = replace(peaked.verdict, relied_upon=False, faithful=False, positions_matter=False)
    sentence = attention_sentence("reference_lstm", peaked)
    assert "48 hours ago" in sentence and "not as a finding about the market" in sentence
    assert any("do not read it as an explanation" in r for r in attention_recommendations({"m": peaked}))


def test_attention_wording_names_its_tests_and_intervals():
    peaked = analysis_for(fake_attention(24), fake_attention(None, seed=1))
    flat = analysis_for(fake_attention(None, seed=2), fake_attention(None, seed=3))
    v = flat.verdict
    sentence = attention_sentence("m", flat)
    assert "block-bootstrap 95% interval" in sentence
    assert f"{v.peak_lift_ci[0]:.2f}-{v.peak_lift_ci[1]:.2f}x" in sentence
    assert f"controls up to {v.control_lift:.2f}x" in sentence and "the interval includes 1" in sentence
    assert "block-bootstrap 95% interval" in attention_sentence("m", peaked)
    assert "no preference beyond uniform" in bucket_sentence("m", flat)
    assert attention_recommendations({"m": flat})[0].startswith("m: uniform-looking attention says nothing")
    # the fixed-lag case: positions matter, single windows add nothing
    peaked.verdict = replace(peaked.verdict, relied_upon=True, faithful=False, positions_matter=True)
    assert "read its mean attention profile (peak 24 h ago)" in attention_recommendations({"m": peaked})[0]
    lines = "\n".join(attention_sections({"learning": peaked, "reference": flat}))
    assert "circular block bootstrap over the 60 test windows in blocks of 12" in lines
    assert "Only 5 blocks: read the intervals as rough." in lines
    assert "learning: trained with one seed; no seed spread is available." in lines


def test_deletion_pool_head_and_seed_sentences():
    from workflows.attention.analysis import describe
    from workflows.attention.sanity import DeletionTest

    attention = fake_attention(24, n=200)
    scale = np.zeros((200, 2, T))
    scale[:, 0, -6:] = fake_attention(None, n=200, seed=4)[:, :6] / fake_attention(None, n=200, seed=4)[:, :6].sum(
        axis=1, keepdims=True
    )
    scale[:, 1] = attention
    members = np.stack([fake_attention(24, n=200, seed=s) for s in range(3)], axis=1)
    an = describe(
        attention,
        {"untrained": {"attention": fake_attention(None, n=200, seed=9)}},
        scale_attention=scale,
        seed_attention=members,
        seed_source="the ensemble's 3 members",
        resamples=300,
    )
    an.deletion = DeletionTest(
        k=5,
        windows=200,
        top_k_change=1.0,
        draws=200,
        matched_change_mean=0.98,
        matched_change_p95=1.02,
        matched_ratio=1.02,
        matched_p_value=0.31,
        matched_overlap=0.4,
        recency_change=0.2,
        recency_ratio=5.0,
        recency_ratio_ci=(4.1, 6.2),
        random_draws=100,
        random_change_mean=0.25,
        random_ratio=4.0,
        random_p_value=0.0099,
        margin=1.5,
        faithful=False,
        positions_matter=True,
    )
    lines = "\n".join(attention_sections({"attention_lstm": an}))
    assert "position-matched deletion on 200 test windows, 200 draws, p = 0.310" in lines
    assert "window by window the map marks nothing beyond where it looks on average" in lines
    assert "deleting the 5 most recent hours (recency baseline; block-bootstrap 95% interval 4.10-6.20x)" in lines
    assert "the hours it attends to matter more than recent or random ones" in lines
    assert "6 h pool peaks" in lines and "48 h pool peaks 24 h ago" in lines and "lift 1 = 1/s" in lines
    assert "attention_lstm across 3 seeds (the ensemble's 3 members): peak hours 24, 24, 24 h ago" in lines


def test_attention_source_names_the_period_models_and_hours_or_says_they_are_not_the_logs():
    from workflows.reporting.report import attention_source

    hours = np.arange(np.datetime64("2025-12-01T00"), np.datetime64("2025-12-03T00"), np.timedelta64(1, "h"))
    period = attention_source(
        {"attention_lstm": ("2025-12-01", "a.pt"), "volatility": ("2025-12-01", "v.pt")}, hours.astype("datetime64[us]")
    )
    assert period.startswith("**Models and hours read:** the forecast periods' models of 2025-12 (")
    assert "attention_lstm `a.pt`, volatility `v.pt`" in period
    assert "on that period's 48 hours, 2025-12-01 00:00 to 2025-12-02 23:00 UTC" in period
    own = attention_source({"attention_lstm": (None, "a.pt")}, hours)
    assert "trained on the first 70% of the history" in own and "not the forecast periods' models" in own


def test_calibration_table_shows_coverage_before_and_after_with_tests():
    ev = evaluation(0.5, n=1000)
    assert calibration_table(ev) == []  # no predictive variance, no interval, no table
    m = ev.returns["reference_lstm"]
    narrow = np.full(1000, 0.0006**2)  # a tenth of the return's sd
    from workflows.evaluation.evidence import interval_calibration

    cal = interval_calibration(np.zeros(1000), np.random.default_rng(0).normal(0, 0.006, 1000), narrow)
    ev.returns["reference_lstm"] = replace(m, calibration=cal)
    lines = calibration_table(ev)
    assert len(lines) == 4 and lines[2].startswith("| reference_lstm | 80% | 800 |")
    before = float(lines[2].split("|")[4].strip().rstrip("%"))
    after = float(lines[2].split("|")[7].strip().rstrip("%"))
    assert before < 20 and abs(after - 80) < 4


def _calibration_evaluation(seed: int = 0, informative: bool = True):
    """2,000 hours of a GARCH-like return: a multi-task model with a too-narrow interval and direction
    probabilities (informative and calibrated, or noise), and the volatility model's next-hour variance."""
    from workflows.evaluation.evidence import VOLATILITY_MODEL, ForecastSet, evaluate_forecasts

    rng = np.random.default_rng(seed)
    n = 2000
    var = np.where(np.arange(n) < n // 2, 0.005**2, 0.012**2)
    actual = rng.normal(0, np.sqrt(var))
    base = np.array([0.25, 0.5, 0.25])
    probs = rng.dirichlet(4 * base, n)
    outcome = np.array([rng.choice(3, p=p) for p in probs]) if informative else rng.choice(3, size=n, p=base)
    fs = ForecastSet(
        np.arange(n).astype("datetime64[h]").astype("datetime64[us]"),
        np.ones(n, int),
        actual,
        np.zeros(n),
        var,
        direction=outcome,
        base_rates=np.tile(base, (n, 1)),
    )
    fs.returns["multitask"] = np.zeros(n)
    fs.variances["multitask"] = var / 100  # intervals a tenth as wide as they should be
    fs.probabilities["multitask"] = probs
    fs.next_var[VOLATILITY_MODEL] = var
    return evaluate_forecasts(fs, "test", [], {})


def test_calibration_sentences_say_when_intervals_pass_and_when_they_fail():
    from workflows.evaluation.evidence import OWN_SD, IntervalCalibration
    from workflows.reporting.report import calibration_sentence
    from workflows.stats.calibration import coverage_test

    ev = _calibration_evaluation()
    c80 = ev.returns["multitask"].calibration[80]
    text = calibration_sentence("multitask", 80, c80)
    assert text.startswith(f"The 80% intervals of multitask covered {100 * c80.before.observed:.1f}% ")
    assert c80.before.observed < 0.3 and abs(c80.after.observed - 0.8) <= 0.02 and c80.calibrated
    assert f"and {100 * c80.after.observed:.1f}% after, scaled by the {OWN_SD} (Kupiec p = " in text
    low, high = c80.by_sd_after[0], c80.by_sd_after[-1]
    assert low.sd_high < high.sd_low  # the calm half and the turbulent half of the hours
    assert (
        "): calibrated (within 2 points of nominal, misses not shown to cluster, and where the sd is low and high: "
        f"{100 * low.observed:.1f}% in the lowest decile of the predicted sd" in text
    )
    # intervals still too narrow after calibration, and misses that come in runs
    rng = np.random.default_rng(1)
    r = rng.normal(0, 1, 2000)
    narrow = coverage_test(r, np.full(2000, -0.8), np.full(2000, 0.8), 0.8)
    runs = np.tile(np.arange(50) < 10, 40)  # exactly 20% misses, in runs of 10 hours
    clustered = coverage_test(np.where(runs, 5.0, 0.0), np.full(2000, -1.0), np.full(2000, 1.0), 0.8)
    bad = calibration_sentence("ensemble", 80, IntervalCalibration(400, narrow, narrow, 1.0, 1.0))
    assert f"calibration fails ({100 * (0.8 - narrow.observed):.1f} points below nominal; not where the sd" in bad
    assert "misses cluster" not in bad
    clumped = calibration_sentence("ensemble", 80, IntervalCalibration(400, clustered, clustered, 1.0, 1.0))
    assert (
        "calibration fails (misses cluster, Christoffersen p < 0.05; not where the sd is low and high: too few "
        in clumped
    )
    assert "scaled by the model's own sd" in clumped


def test_an_interval_right_on_average_but_not_where_the_sd_is_low_or_high_is_not_called_calibrated():
    """One fixed width for every hour, set so that 80% of all hours are covered: the calm hours are covered
    nearly always and the turbulent ones far less, so the verdict is "fails", with both deciles named."""
    from workflows.evaluation.evidence import IntervalCalibration
    from workflows.reporting.report import calibration_sentence
    from workflows.stats.calibration import coverage_by_sd, coverage_test

    rng = np.random.default_rng(4)
    sd = np.exp(rng.uniform(-1.5, 1.5, 5_000))
    y = rng.normal(0, sd)
    width = np.quantile(np.abs(y), 0.8)
    lo, hi = np.full(5_000, -width), np.full(5_000, width)
    overall = coverage_test(y, lo, hi, 0.8)
    bins = coverage_by_sd(y, lo, hi, sd, 0.8)
    assert abs(overall.observed - 0.8) < 0.01 and len(bins) == 10
    assert bins[0].observed > 0.99 and bins[-1].observed < 0.6
    assert bins[0].interval_score < bins[-1].interval_score
    cal = IntervalCalibration(1_000, overall, overall, 1.0, 1.0, by_sd_after=bins)
    assert not cal.calibrated
    text = calibration_sentence("ensemble", 80, cal)
    assert (
        "calibration fails (not where the sd is low and high: 100.0% in the lowest decile of the predicted sd" in text
    )
    # the same hours with an interval scaled by the sd: calibrated in every decile
    scaled = coverage_by_sd(y, -1.2816 * sd, 1.2816 * sd, sd, 0.8)
    assert all(abs(b.observed - 0.8) < 0.05 for b in scaled)
    assert (
        IntervalCalibration(
            1_000, overall, coverage_test(y, -1.2816 * sd, 1.2816 * sd, 0.8), 1.0, 1.0, by_sd_after=scaled
        )
        .by_sd_after[0]
        .kupiec_p
        > 0.025
    )


def test_probability_sentences_and_table_follow_the_brier_test():
    from workflows.reporting.report import probability_sentence, probability_table

    good = _calibration_evaluation(informative=True).probabilities["multitask"]
    noise = _calibration_evaluation(informative=False).probabilities["multitask"]
    assert good.beats_base_rate and noise.skill < 0
    said = probability_sentence("multitask", good)
    assert f"Brier of {good.brier:.4f} against {good.base_rate_brier:.4f} for the base rate" in said
    assert "training hours of each fold" in said and ": better than the base rate." in said
    assert "Reliability: every bin of at least 50 hours lies within 3 binomial standard errors" in said
    noisy = probability_sentence("multitask", noise)
    assert ": no better than the base rate. Calibration fails: " in noisy and "binomial standard errors)." in noisy
    ev = _calibration_evaluation()
    lines = probability_table(ev)
    assert len(lines) == 3 and lines[2].startswith(f"| multitask | 2,000 | {good.brier:.4f} |")
    assert probability_table(evaluation(0.5, n=300)) == []  # no probabilities, no table
    flat = analysis_for(fake_attention(None, seed=2), fake_attention(None, seed=3))
    text = write_report(ReportInputs("BTCUSDT", "SYNTHETIC data", ev, {"multitask": flat}, profile="ci"))
    assert "### Interval calibration" in text and "### Direction probabilities" in text
    assert "- The 95% intervals of multitask covered" in text and "- The DOWN / STABLE / UP probabilities" in text


def test_calibration_figures_draw_coverage_and_reliability(tmp_path):
    from workflows.reporting.calibration_figures import coverage_figure, reliability_figure

    ev = _calibration_evaluation()
    coverage = coverage_figure(ev, ["multitask"], tmp_path / "coverage.png")
    reliability = reliability_figure(ev, ["multitask"], tmp_path / "reliability.png")
    assert coverage is not None and reliability is not None
    (path, drawn), (path2, panels) = coverage, reliability
    assert drawn == 1 and panels == 3
    for p in (path, path2):
        with Image.open(p) as img:
            assert np.asarray(img.convert("L")).std() > 10  # not a blank canvas
    plain = evaluation(0.5, n=300)  # no interval, no probabilities: nothing drawn
    assert coverage_figure(plain, ["reference_lstm"], tmp_path / "c.png") is None
    assert reliability_figure(plain, ["reference_lstm"], tmp_path / "r.png") is None
    assert not (tmp_path / "c.png").exists()


def test_the_header_says_the_profile_each_model_trained_in():
    flat = analysis_for(fake_attention(None, seed=2), fake_attention(None, seed=3))
    ev = evaluation(0.0, n=300)
    mixed = {"attention_lstm": "cpu", "reference_lstm": "cpu", "multitask": "ci", "volatility": "ci"}
    text = write_report(ReportInputs("BTCUSDT", "SYNTHETIC data", ev, {"reference_lstm": flat}, profiles=mixed))
    assert "; profiles `cpu` for attention_lstm, reference_lstm; `ci` for multitask, volatility; test hours" in text
    same = write_report(
        ReportInputs("BTCUSDT", "SYNTHETIC data", ev, {"reference_lstm": flat}, profiles=dict.fromkeys(mixed, "ci"))
    )
    assert "; profile `ci`; test hours" in same and "profiles" not in same.split("test hours")[0]
    assert profiles_note({"multitask": None}) == "profile `?`"  # a model registered without its profile


def test_the_run_config_profile_field_offers_exactly_the_profiles():
    assert get_args(ProfileChoice) == ("", *PROFILES)
