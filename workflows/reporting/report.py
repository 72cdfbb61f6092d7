"""The Markdown report. Every interpreting sentence is chosen by a number and its test on
the same page; nothing is claimed that the page does not show.

Rules the forecast wording follows (the attention wording: `attention_text`):
* The evidence is named first: the forecast log's monthly periods, pooled (every
  model and control trained once per period on the hours before it).
* Every comparative claim is a member of one of three families of one-sided
  Diebold-Mariano tests, by question (return skill: each forecaster vs the zero
  forecast; does attention help: each attention model vs its no-attention twin;
  volatility: the volatility forecasts vs each baseline by QLIKE), each family
  Holm-adjusted on its own and named beside the verdict. "Beats" only when the
  adjusted p < 0.05 and the skill is positive;
  a raw p < 0.05 that does not survive is said to be so; otherwise "no evidence",
  with the skill this many hours could detect.
* Volatility forecasts are ranked only through those tests: "worse" when the reverse
  one-sided test survives the same correction, otherwise "not shown to differ" with the
  skill and the skill the test resolves (a non-rejection is never written as equality).
* Figures outside the family (skill against the training mean, direction tests,
  the per-period skills) are labelled descriptive.
* never "converged", never "detects a cycle".
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from workflows.attention.analysis import AttentionAnalysis
from workflows.evaluation.evidence import (
    ALPHA,
    ATTENTION_HELPS,
    COVERAGE_TOLERANCE,
    DESCRIPTIVE,
    FAMILIES,
    RETURN_SKILL,
    VOLATILITY_MODEL,
    Comparison,
    Evaluation,
    IntervalCalibration,
    ProbabilityCalibration,
    ReturnMetrics,
    within_tolerance,
)
from workflows.ml.profiles import control_kinds, return_models, twins
from workflows.ml.training_summary import TrainingSummary
from workflows.reporting import volatility_text
from workflows.reporting.attention_text import attention_recommendations, attention_sections, attention_sentence
from workflows.reporting.fmt import _p, _pct
from workflows.stats.calibration import CoverageTest, ReliabilityBin, holds_at_low_and_high_sd

VOLATILITY_FIGURE = "volatility_attention.png"

# The report's model rows and trained controls come from the registry of model kinds (ml/profiles.py).
MODELS = return_models()
CONTROLS = (*control_kinds(), "ridge_ar48", "ridge_features")
ROLES = {
    **{
        twin: f"control: {design}'s LSTM without attention (last state), same recipe"
        for design, twin in twins().items()
    },
    "ridge_ar48": "control: ridge regression on the 48 lagged returns",
    "ridge_features": "control: ridge regression on every input of the window (48 h x 3 features)",
}


def order(names) -> list[str]:
    known = [n for n in (*MODELS, *CONTROLS) if n in names]
    return known + sorted(n for n in names if n not in known)


def data_note(sources: list[str]) -> str:
    """The report's line on where the candles came from (synthetic data said loudly)."""
    if any(s.startswith("synthetic") for s in sources):
        return "SYNTHETIC data: generated candles with a planted dependency, not a market."
    return f"Data sources: {', '.join(sources)}."


def _evidence_words(ev: Evaluation) -> str:
    return "pooled test hours of the forecast log's monthly periods"


def family_words(ev: Evaluation, family: str = RETURN_SKILL) -> str:
    return ev.family_words(family)


def _ci(ci: tuple[float, float]) -> str:
    return f"[{100 * ci[0]:+.2f}%, {100 * ci[1]:+.2f}%]"


def forecast_sentence(name: str, ev: Evaluation) -> str:
    m = ev.returns[name]
    c = ev.comparison("vs zero", name)
    assert c is not None
    where = f"{m.n:,} {_evidence_words(ev)}"
    test = f"one-sided Diebold-Mariano p = {_p(c.dm.p_better)}, Holm-adjusted p = {_p(c.p_holm)}"
    if c.survives:
        return (
            f"**{name}** beats the zero-return forecast: skill {_pct(m.skill_vs_zero)} "
            f"{_ci(m.skill_vs_zero_ci)} on {where} ({test}; {family_words(ev)})."
        )
    if c.dm.p_better < ALPHA and m.skill_vs_zero > 0:
        return (
            f"**{name}**: skill {_pct(m.skill_vs_zero)} on {where} (raw {test}): significant alone, but it does "
            f"not survive the correction for the {len(ev.members(RETURN_SKILL))} tests of the {RETURN_SKILL} "
            "family, so no claim is made."
        )
    return (
        f"**{name}**: no evidence that it beats the zero-return forecast: skill {_pct(m.skill_vs_zero)} "
        f"{_ci(m.skill_vs_zero_ci)} on {where} ({test}); this many hours resolve a skill of about "
        f"{100 * m.min_detectable_skill:.1f}%."
    )


def _lower_or_higher(skill: float, what: str) -> str:
    return f"{what} is {100 * abs(skill):.2f}% {'lower' if skill >= 0 else 'higher'}"


def twin_sentence(c: Comparison, ev: Evaluation) -> str:
    test = f"{c.test}, p = {_p(c.dm.p_better)}, Holm-adjusted p = {_p(c.p_holm)}"
    target = f" ({c.horizon} h variance, {c.loss})" if c.loss == "QLIKE" else ""
    lead = f"Does attention help **{c.model}**{target}? Against its no-attention twin `{c.baseline}` on the same hours"
    diff = _lower_or_higher(c.skill, f"its {c.loss}") + " than the twin's"
    if c.survives:
        return f"{lead}: yes, {diff} ({test}; {family_words(ev, ATTENTION_HELPS)})."
    if c.worse:
        return (
            f"{lead}: no, the model with attention is worse ({diff}; the reverse one-sided test, Holm-adjusted "
            f"p = {_p(c.p_worse_holm)}; {c.test})."
        )
    return (
        f"{lead}: not shown to differ ({diff}; {test}; the hours resolve a skill of about "
        f"{100 * c.resolvable_skill:.1f}%)."
    )


def direction_sentence(name: str, m: ReturnMetrics) -> str:
    tests = (
        f"binomial p = {_p(m.direction_binomial_p)}, Pesaran-Timmermann p = {_p(m.pesaran_timmermann_p)}; "
        "descriptive, not in the corrected family"
    )
    if m.direction_binomial_p < ALPHA and m.pesaran_timmermann_p < ALPHA:
        return f"{name} calls the direction of {100 * m.direction_accuracy:.1f}% of {m.direction_n:,} hours ({tests})."
    return (
        f"{name} calls the direction of {100 * m.direction_accuracy:.1f}% of {m.direction_n:,} hours: not "
        f"distinguishable from a coin ({tests})."
    )


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def bottom_line(ev: Evaluation) -> str:
    """One sentence for the four cases: models that beat the zero-return forecast (some or none) and
    controls that do (some or none)."""
    winners = [c.model for c in ev.survivors("vs zero")]
    models = [w for w in winners if w in MODELS]
    controls = [w for w in winners if w not in MODELS]
    where = f"{ev.hours:,} {_evidence_words(ev)}"
    tests = f"({family_words(ev)}, one-sided Diebold-Mariano)"
    if not winners:
        return (
            f"**Bottom line:** no model and no control beats the zero-return forecast on {where} after the Holm "
            f"correction; this many hours cannot resolve a skill below about {100 * ev.min_detectable_skill:.1f}%."
        )
    beat = "beats" if len(models) == 1 else "beat"
    if models and controls:
        text = (
            f"{_names(models)} {beat} the zero-return forecast, and so "
            f"{'does the control' if len(controls) == 1 else 'do the controls'} {_names(controls)}"
        )
    elif models:
        text = f"{_names(models)} {beat} the zero-return forecast; no control does"
    else:
        text = (
            f"no model beats the zero-return forecast, but {'the control' if len(controls) == 1 else 'the controls'} "
            f"{_names(controls)} {'does' if len(controls) == 1 else 'do'}: there is structure the models miss"
        )
    return f"**Bottom line:** on {where}, {text} {tests}."


def forecast_table(ev: Evaluation) -> list[str]:
    lines = [
        "| forecaster | RMSE % | skill vs zero [95% interval] | DM p | Holm p | skill vs train mean "
        "(descriptive) | direction | PT p | 80% / 95% coverage |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in order(ev.returns):
        m = ev.returns[name]
        c = ev.comparison("vs zero", name)
        cov = f"{100 * m.coverage_80:.0f}% / {100 * (m.coverage_95 or 0):.0f}%" if m.coverage_80 is not None else "n/a"
        mark = " **survives**" if c and c.survives else ""
        lines.append(
            f"| {name} | {m.rmse_pct:.4f} | {_pct(m.skill_vs_zero)} {_ci(m.skill_vs_zero_ci)} | "
            f"{_p(c.dm.p_better) if c else 'n/a'} | {_p(c.p_holm) if c else 'n/a'}{mark} | "
            f"{_pct(m.skill_vs_mean)} | {100 * m.direction_accuracy:.1f}% | {_p(m.pesaran_timmermann_p)} | "
            f"{cov} |"
        )
    zero = next(iter(ev.returns.values())).rmse_zero_pct
    lines += ["", f"Zero-return forecast RMSE: {zero:.4f}%."]
    return lines


def calibration_table(ev: Evaluation) -> list[str]:
    """Interval coverage before and after conformal calibration, with Kupiec and Christoffersen p."""
    rows = [(name, pct, c) for name in order(ev.returns) for pct, c in sorted(ev.returns[name].calibration.items())]
    if not rows:
        return []
    lines = [
        "| forecaster | level | hours | coverage before | Kupiec p | Christoffersen p | coverage after | "
        "Kupiec p | Christoffersen p | interval score before / after | conformal scale | "
        "coverage after by decile of the predicted sd, lowest to highest |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for name, pct, c in rows:
        b, a = c.before, c.after
        lines.append(
            f"| {name} | {pct}% | {a.n} | {100 * b.observed:.1f}% | {_p(b.kupiec_p)} | {_p(b.independence_p)} | "
            f"{100 * a.observed:.1f}% | {_p(a.kupiec_p)} | {_p(a.independence_p)} | "
            f"{100 * c.interval_score_before:.3f} / {100 * c.interval_score_after:.3f} | {c.scale} | "
            + " / ".join(f"{100 * b.observed:.0f}" for b in c.by_sd_after)
            + " |"
        )
    return lines


def _tests(c: CoverageTest) -> str:
    return f"Kupiec p = {_p(c.kupiec_p)}, Christoffersen p = {_p(c.independence_p)}"


def _coverage_verdict(cal: IntervalCalibration) -> str:
    """Why a coverage passes or fails: distance from nominal, whether the misses cluster, and whether it holds
    where the predicted sd is lowest and highest."""
    c = cal.after
    gap = 100 * (c.observed - c.nominal)
    problems = []
    if not within_tolerance(c):
        problems.append(f"{abs(gap):.1f} points {'above' if gap > 0 else 'below'} nominal")
    if c.independence_p < ALPHA:
        problems.append(f"misses cluster, Christoffersen p < {ALPHA}")
    low, high = (cal.by_sd_after[0], cal.by_sd_after[-1]) if len(cal.by_sd_after) >= 2 else (None, None)
    extremes = (
        f"{100 * low.observed:.1f}% in the lowest decile of the predicted sd (Kupiec p = {_p(low.kupiec_p)}), "
        f"{100 * high.observed:.1f}% in the highest (p = {_p(high.kupiec_p)})"
        if low and high
        else "too few hours for coverage by decile of the predicted sd"
    )
    if not holds_at_low_and_high_sd(cal.by_sd_after, ALPHA):
        problems.append(f"not where the sd is low and high: {extremes}")
    if problems:
        return "calibration fails (" + "; ".join(problems) + ")"
    note = f"; Kupiec still rejects exact nominal coverage, p < {ALPHA}" if c.kupiec_p < ALPHA else ""
    return (
        f"calibrated (within {100 * COVERAGE_TOLERANCE:.0f} points of nominal, misses not shown to cluster, "
        f"and where the sd is low and high: {extremes}{note})"
    )


def calibration_sentence(name: str, pct: int, c: IntervalCalibration) -> str:
    """One interval level of one model, before and after calibration, with its verdict."""
    return (
        f"The {pct}% intervals of {name} covered {100 * c.before.observed:.1f}% of {c.after.n:,} hours before "
        f"calibration ({_tests(c.before)}) and {100 * c.after.observed:.1f}% after, scaled by the {c.scale} "
        f"({_tests(c.after)}): {_coverage_verdict(c)}."
    )


def probability_table(ev: Evaluation) -> list[str]:
    """The direction probabilities' Brier score against the base-rate forecast, with the test."""
    if not ev.probabilities:
        return []
    lines = [
        "| model | hours | Brier | base-rate Brier | skill | DM p | base rate from |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name in order(ev.probabilities):
        pc = ev.probabilities[name]
        lines.append(
            f"| {name} | {pc.n:,} | {pc.brier:.4f} | {pc.base_rate_brier:.4f} | {_pct(pc.skill)} | "
            f"{_p(pc.dm.p_better)} | {pc.base_rate_source} |"
        )
    return lines


RELIABILITY_MIN_COUNT = 50  # bins with fewer hours are too noisy to name
RELIABILITY_Z = 3.0  # a bin's observed frequency this many binomial standard errors off its forecast: not calibrated


def reliability_gap(pc: ProbabilityCalibration) -> tuple[str, ReliabilityBin, float] | None:
    """The bin of at least RELIABILITY_MIN_COUNT hours whose observed frequency lies the most binomial standard
    errors from its mean forecast: (class, bin, z); None when no bin has that many hours."""
    worst = None
    for cls, table in pc.reliability.items():
        for b in table:
            if b.count < RELIABILITY_MIN_COUNT:
                continue
            f = min(max(b.mean_forecast, 1e-3), 1 - 1e-3)
            z = (b.mean_forecast - b.observed_frequency) / np.sqrt(f * (1 - f) / b.count)
            if worst is None or abs(z) > abs(worst[2]):
                worst = (cls, b, float(z))
    return worst


def probability_sentence(name: str, pc: ProbabilityCalibration) -> str:
    """The Brier verdict of one model's direction probabilities, and their worst bin of the reliability table."""
    lead = (
        f"The DOWN / STABLE / UP probabilities of {name} score a Brier of {pc.brier:.4f} against "
        f"{pc.base_rate_brier:.4f} for the base rate (from the {pc.base_rate_source}) on {pc.n:,} hours, skill "
        f"{_pct(pc.skill)} (one-sided DM p = {_p(pc.dm.p_better)}, long-memory-robust)"
    )
    if pc.beats_base_rate:
        verdict = "better than the base rate"
    elif pc.skill <= 0:
        verdict = "no better than the base rate"
    else:
        verdict = "no evidence that they beat the base rate"
    gap = reliability_gap(pc)
    tail = ""
    if gap is not None:
        cls, b, z = gap
        diff = b.mean_forecast - b.observed_frequency
        where = (
            f"{cls} forecasts of {100 * b.lower:.0f}-{100 * b.upper:.0f}% ({b.count:,} hours, mean "
            f"{100 * b.mean_forecast:.1f}%) came true {100 * b.observed_frequency:.1f}% of the time"
        )
        if abs(z) > RELIABILITY_Z:
            tail = (
                f" Calibration fails: {where}, {100 * abs(diff):.1f} points {'below' if diff > 0 else 'above'} "
                f"the forecast ({abs(z):.1f} binomial standard errors)."
            )
        else:
            tail = (
                f" Reliability: every bin of at least {RELIABILITY_MIN_COUNT} hours lies within "
                f"{RELIABILITY_Z:.0f} binomial standard errors of its forecast (the farthest: {where})."
            )
    return f"{lead}: {verdict}.{tail}"


def fold_table(ev: Evaluation, names: list[str]) -> list[str]:
    lines = [
        "| fold | test hours | test period | trained on (window ends) | " + " | ".join(names) + " | s |",
        "| ---: | ---: | --- | --- | " + " | ".join("---:" for _ in names) + " | ---: |",
    ]
    for f in ev.folds:
        lines.append(
            f"| {f.fold} | {f.test_hours:,} | {f.test_start} .. {f.test_end} | {f.train_start[:10]} .. "
            f"{f.train_end[:10]} ({f.train_windows:,} windows) | "
            + " | ".join(_pct(f.skill_vs_zero[n]) for n in names)
            + f" | {f.seconds:.0f} |"
        )
    return lines


def family_table(ev: Evaluation) -> list[str]:
    lines = [
        "| # | family | comparison | loss, horizon | skill | raw p | Holm p | verdict |",
        "| ---: | --- | --- | --- | ---: | ---: | ---: | --- |",
    ]
    i = 0
    for family in (*FAMILIES, DESCRIPTIVE):
        for c in sorted(ev.members(family), key=lambda c: (c.p_holm, c.dm.p_better)):
            i += 1
            verdict = "better" if c.survives else "worse" if c.worse else "not shown to differ"
            holm_p = _p(c.p_holm)
            if family == DESCRIPTIVE:
                verdict, holm_p = "descriptive", "n/a"
            lines.append(
                f"| {i} | {family or 'descriptive'} | {c.model} vs {c.baseline} | {c.loss}, {c.horizon} h | "
                f"{_pct(c.skill)} | {_p(c.dm.p_better)} | {holm_p} | {verdict} |"
            )
    return lines


def recommendations(ev: Evaluation, analyses: dict) -> list[str]:
    recs = []
    survivors = [c.model for c in ev.survivors("vs zero")]
    winners = [m for m in survivors if m in MODELS]
    controls = [m for m in survivors if m not in MODELS]
    if not winners:
        recs.append(
            f"No model beats the zero-return forecast on these {ev.hours:,} hours after the correction: do not "
            "act on the models' return forecasts."
        )
        if controls:
            recs.append(
                f"The control{'s' if len(controls) > 1 else ''} {_names(controls)} "
                f"{'do' if len(controls) > 1 else 'does'} beat it: the hours hold structure a simple model finds "
                "and the networks miss; look at what the control uses before training more networks."
            )
    else:
        recs.append(
            "Models that beat the zero-return forecast after the correction: "
            + ", ".join(winners)
            + ". Confirm on a later, untouched period before relying on them."
        )
        if controls:
            recs.append(
                f"The control{'s' if len(controls) > 1 else ''} {_names(controls)} also "
                f"beat{'' if len(controls) > 1 else 's'} the zero forecast: compare the models with "
                f"{'them' if len(controls) > 1 else 'it'} before crediting their architecture."
            )
    return recs + attention_recommendations(analyses)


@dataclass(frozen=True)
class ReportInputs:
    """Everything one symbol's report is written from."""

    symbol: str
    data_note: str  # one line above everything: synthetic data, or the data sources
    evaluation: Evaluation
    analyses: dict[str, AttentionAnalysis]  # model name -> its attention analysis
    figures: dict[str, str] = field(default_factory=dict)  # caption -> file name beside the report
    profile: str = "?"  # the training profile of the models (when `profiles` is empty)
    profiles: Mapping[str, str | None] = field(default_factory=dict)  # model name -> the profile it trained in
    training: dict[str, TrainingSummary] = field(default_factory=dict)  # model name -> its checkpoint's figures
    attention_source: str = ""  # which models and hours the attention sections read (`attention_source`)


def profiles_note(by_kind: Mapping[str, str | None]) -> str:
    """The profiles the models trained in, as the header says them: profile `cpu` when they share one, else each
    with its models (profiles `cpu` for attention_lstm, reference_lstm; `ci` for transformer, ...)."""
    kinds_of: dict[str, list[str]] = {}
    for kind, profile in by_kind.items():
        kinds_of.setdefault(profile or "?", []).append(kind)
    if len(kinds_of) == 1:
        return f"profile `{next(iter(kinds_of))}`"
    return "profiles " + "; ".join(f"`{p}` for {', '.join(kinds)}" for p, kinds in kinds_of.items())


def attention_source(models: dict[str, tuple[str | None, str]], test_end_ts) -> str:
    """One sentence: the models (name -> (period key or None, checkpoint file)) and the hours the attention
    analysis reads. Period models: the forecast log's, on their period's hours."""
    ts = np.asarray(test_end_ts)

    def minute(t) -> str:
        return str(t)[:16].replace("T", " ")

    hours = f"{len(ts):,} hours, {minute(ts.min())} to {minute(ts.max())} UTC" if len(ts) else "no hours"
    periods = {p[:7] for p, _ in models.values() if p}
    files = ", ".join(f"{m} `{f}`" for m, (_, f) in models.items())
    if periods and all(p for p, _ in models.values()):
        return (
            f"**Models and hours read:** the forecast periods' models of {', '.join(sorted(periods))} "
            f"({files}), on that period's {hours}: the same models and the same hours whose forecasts the forecast "
            "log holds and the evaluation above pools."
        )
    return (
        f"**Models and hours read:** the model assets ({files}), trained on the first 70% of the history, on their "
        f"own test split ({hours}): not the forecast periods' models."
    )


def period_attention_source(analyses: dict[str, AttentionAnalysis]) -> str:
    """The models and hours a pooled attention analysis read: every period's models, each on its own month's
    logged hours (the forecast log's); "" when the analyses are not pooled over periods."""
    readings = {m: an.periods for m, an in analyses.items() if an.periods}
    if not readings or len(readings) != len(analyses):
        return ""
    first = next(iter(readings.values()))
    hours = sum(p.windows for p in first)
    periods = [p.period for p in first]
    span = f"{periods[0]} to {periods[-1]}" if len(periods) > 1 else periods[0]
    lines = [
        f"**Models and hours read:** the forecast periods' models of {span} ({len(periods)} period(s)), each on "
        f"its own period's logged hours: {hours:,} hours, {first[0].first_hour} to {first[-1].last_hour} UTC, the "
        "same models and the same hours whose forecasts the forecast log holds and the evaluation above pools. "
        "Their controls (untrained, shuffled targets) were trained once per period and architecture. Checkpoints "
        "read, per period:",
        "",
        "| period | hours | " + " | ".join(readings) + " |",
        "| --- | ---: |" + " --- |" * len(readings),
    ]
    for i, p in enumerate(first):
        files = " | ".join(f"`{rs[i].checkpoint}`" if i < len(rs) else "" for rs in readings.values())
        lines.append(f"| {p.period} | {p.windows:,} ({p.first_hour} to {p.last_hour}) | {files} |")
    return "\n".join(lines)


def summary_sentences(ev: Evaluation, analyses: dict[str, AttentionAnalysis]) -> list[str]:
    """The report's summary under its bottom line, one sentence a finding (the CLI prints these too)."""
    out = [forecast_sentence(m, ev) for m in order(ev.returns) if m in MODELS]
    out += [twin_sentence(c, ev) for c in ev.family if c.kind == "attention vs twin"]
    out += volatility_text.summary_sentences(ev)
    out += [attention_sentence(m, an) for m, an in analyses.items()]
    return out


def write_report(inputs: ReportInputs) -> str:
    """The report's Markdown text."""
    ev, analyses, figures = inputs.evaluation, inputs.analyses, inputs.figures
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# Attention report: {inputs.symbol}", ""]
    if inputs.data_note:
        lines += [f"> {inputs.data_note}", ""]
    evidence = f"**Evidence:** {ev.note}."
    lines += [
        f"Generated {now}; {profiles_note(inputs.profiles or {'': inputs.profile})}; test hours {ev.test_start} .. "
        f"{ev.test_end}.",
        "",
        evidence,
        "",
        "## Summary",
        "",
        bottom_line(ev),
        "",
    ]
    lines += [f"- {s}" for s in summary_sentences(ev, analyses)]
    lines += [
        "",
        f"## Forecasts against baselines and controls ({_evidence_words(ev)})",
        "",
        "Next-hour log return in percent. Skill = 1 - MSE / MSE of the zero-return forecast, with a 95% "
        "interval from the autocorrelation-robust variance of the loss difference. DM p: one-sided "
        f"Diebold-Mariano (HLN), model better; Holm p: adjusted within the {RETURN_SKILL} family of "
        f"{len(ev.members(RETURN_SKILL))} tests (each forecaster against the zero-return forecast). Direction is "
        "scored on hours that moved.",
        "",
    ]
    lines += forecast_table(ev)
    lines += [""] + [f"- {forecast_sentence(m, ev)}" for m in order(ev.returns) if m not in MODELS]
    lines += [f"- {ROLES[m]}" for m in order(ev.returns) if m in ROLES]
    lines += [""] + [f"- {direction_sentence(m, ev.returns[m])}" for m in order(ev.returns) if m in MODELS]
    calibration = calibration_table(ev)
    if calibration:
        hours = next(c for m in ev.returns.values() for c in m.calibration.values()).calibration_hours
        lines += [
            "",
            "### Interval calibration",
            "",
            "Coverage of the 80% and 95% intervals of every model that gives one: before, the model's own "
            "Gaussian interval; after, adaptive conformal intervals (Gibbs-Candes) scaled by the model's own "
            "predictive sd, each from earlier hours of the forecast log only: the intervals `latest_forecast` "
            "serves (one code path, evaluation/intervals.py), so the verdict is about what is served. The first "
            f"{hours} hours of the log only calibrate. Kupiec: coverage equals nominal; Christoffersen: misses "
            "independent. Calibrated here means within "
            f"{100 * COVERAGE_TOLERANCE:.0f} points of nominal with Christoffersen p >= {ALPHA}, and coverage "
            "that Kupiec does not reject (each at 2.5%) in the lowest and in the highest decile of the sd the "
            "interval is scaled by: an interval forced to nominal coverage on average can still miss where the "
            "forecast is most and least sure. Interval score (Gneiting & Raftery 2007) in percent of log return, "
            "lower is better.",
            "",
            *calibration,
            "",
        ]
        lines += [
            f"- {calibration_sentence(name, pct, c)}"
            for name in order(ev.returns)
            for pct, c in sorted(ev.returns[name].calibration.items())
        ]
    probabilities = probability_table(ev)
    if probabilities:
        lines += [
            "",
            "### Direction probabilities",
            "",
            "Multi-category Brier score of the DOWN / STABLE / UP probabilities (lower is better) against the "
            "base-rate forecast: each class's frequency in the training hours of the hour's fold (where none is "
            "stored, in the evaluated hours before it; never the hour's own). Skill = 1 - "
            "Brier / base-rate Brier; DM p: one-sided Diebold-Mariano on the per-hour Brier difference with a "
            "long-memory-robust variance (descriptive, not in a corrected family).",
            "",
            *probabilities,
            "",
        ]
        lines += [f"- {probability_sentence(name, ev.probabilities[name])}" for name in order(ev.probabilities)]
    lines += [
        "",
        "### Per monthly period",
        "",
        "Skill against the zero-return forecast in each monthly period's test hours "
        "(descriptive: the tests use the pooled hours).",
        "",
    ]
    lines += fold_table(ev, list(order(ev.returns)))
    twins = [c for c in ev.family if c.kind == "attention vs twin"]
    if twins:
        lines += [
            "",
            "## Does attention help?",
            "",
            "Each attention design against the same LSTM without attention (it reads its last hidden state), "
            "trained with the same recipe on the same hours.",
            "",
        ]
        lines += [f"- {twin_sentence(c, ev)}" for c in twins]
    vol_figure = VOLATILITY_FIGURE if VOLATILITY_FIGURE in figures.values() else None
    lines += volatility_text.volatility_section(ev, analyses.get(VOLATILITY_MODEL), vol_figure)
    lines += [
        "",
        "## The families of comparisons",
        "",
        "Every claim of being better above is one of these one-sided tests, grouped by the question it answers: "
        + "; ".join(f"{f} ({len(ev.members(f))} tests)" for f in FAMILIES if ev.members(f))
        + f". Holm's step-down adjustment within each family keeps the chance of any false claim in it at "
        f"{ALPHA:.0%}. The MSE of the variance is descriptive (raw p, no claim: a few spikes decide it). The "
        "volatility tests use a long-run variance robust to long memory (equal-weighted cosine, Student t).",
        "",
    ]
    lines += family_table(ev)
    lines += ["", *attention_sections(analyses, inputs.attention_source)]
    lines += ["", "## Training", ""]
    for m, info in inputs.training.items():
        lines.append(
            f"- {m}: {info.epochs_run} epochs, best validation loss at epoch {info.best_epoch}"
            f"{' (early stopping: no improvement for the patience window)' if info.stopped_early else ''}"
            f"; {info.parameters:,} parameters; {info.device}"
            + (f"; {info.wall_s:.1f} s." if info.wall_s is not None else "; training time not recorded.")
        )
    lines += ["", "## Recommendations", ""] + [f"- {r}" for r in recommendations(ev, analyses)]
    lines += ["", "## Figures", ""]
    lines += [f"![{caption}]({name})" for caption, name in figures.items()]
    return "\n".join(lines) + "\n"
