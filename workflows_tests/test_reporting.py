import numpy as np
import pytest
from PIL import Image

from workflows.attention import metrics as am
from workflows.reporting import figures
from workflows.reporting.attention_text import attention_sentence, bucket_sentence
from workflows.reporting.report import forecast_sentence, write_report

T = 48


def fake_attention(peak: int | None, n: int = 60, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 0.05, (n, T))
    if peak is not None:
        logits[:, T - peak] += 4.0
    w = np.exp(logits)
    return w / w.sum(axis=1, keepdims=True)


def analysis_for(attention: np.ndarray, control: np.ndarray) -> dict:
    from workflows.attention.analysis import verdict

    summary, ctrl = am.summarise(attention), am.summarise(control)
    return {"summary": summary, "controls": {"untrained": ctrl},
            "verdict": verdict(summary, {"untrained": ctrl}, None, None).to_dict()}


def evaluation(skill: float, p: float, n: int = 300) -> dict:
    from workflows.evaluation.forecasts import minimum_detectable_skill

    return {"returns": {
        "n": n, "rmse_pct": 0.5, "rmse_zero_pct": 0.5, "rmse_mean_pct": 0.5, "skill_vs_zero": skill,
        "skill_vs_mean": skill, "dm_vs_zero_p": p, "dm_vs_mean_p": p, "direction_accuracy": 0.51,
        "direction_n": n, "direction_binomial_p": 0.4, "pesaran_timmermann_p": 0.4, "mae_pct": 0.4,
        "min_detectable_skill": minimum_detectable_skill(n)}}


def test_attention_figure_has_seven_panels_and_expected_size(tmp_path):
    attention = fake_attention(24)
    path, panels = figures.attention_analysis_figure(attention, am.summarise(attention), "test", tmp_path / "a.png",
                                                     {"untrained": am.summarise(fake_attention(None))})
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
    assert "beats the zero-return forecast: skill +3.00%" in forecast_sentence("m", evaluation(0.03, 0.01))
    weak = forecast_sentence("m", evaluation(0.03, 0.2, n=300))
    assert "no evidence" in weak and "8.2%" in weak  # 300 hours cannot resolve 3% skill


def test_report_never_claims_what_it_cannot_show():
    flat = analysis_for(fake_attention(None, seed=2), fake_attention(None, seed=3))
    text = write_report("BTCUSDT", "SYNTHETIC data", {"reference_lstm": evaluation(-0.001, 0.6)},
                        {"reference_lstm": flat}, {"panels": "attention_analysis.png"}, {"profile": "ci"})
    lowered = text.lower()
    for banned in ("converged", "detects a cycle", "2-day cycle", "historical bias"):
        assert banned not in lowered
    assert "do not act on these forecasts" in text
    assert text.startswith("# Attention report: BTCUSDT")
    assert "![panels](attention_analysis.png)" in text


def test_concentrated_but_unused_attention_is_called_a_quirk():
    peaked = analysis_for(fake_attention(48), fake_attention(None, seed=1))
    peaked["verdict"].update(relied_upon=False, faithful=False)
    sentence = attention_sentence("reference_lstm", peaked)
    assert "48 hours ago" in sentence and "not as a finding about the market" in sentence
