"""The volatility part of the report: forecasts against every baseline, bias, and where the
volatility model's attention looks, each sentence chosen by a number and its test.

Wording rules:
* "beats" a baseline only when the one-sided Diebold-Mariano test survives the Holm
  correction of the whole family; "worse than" only when the reverse one-sided test
  survives the same correction; otherwise "not shown to differ", with the skill and the
  skill the test resolves (never "no difference": a non-rejection is not equality);
* "unbiased" is never said: a Mincer-Zarnowitz test that does not reject says "no
  evidence of bias";
* the attention "marks" a lag group only when its lift's interval clears 1 and the
  controls' intervals; it "ranks like the autocorrelation" only when the block-bootstrap
  interval of its Spearman correlation with the autocorrelation of absolute returns
  clears 0 and every control's interval; "follows the daily cycle" only when the
  window-level correlation's interval (the size of the input 24 hours ago partialled
  out) clears 0 and the controls' correlations.
"""

from workflows.attention.analysis import AttentionAnalysis
from workflows.attention.volatility import VolatilityAttention
from workflows.evaluation.baselines import VOL_BASELINES
from workflows.evaluation.evidence import (
    DESCRIPTIVE,
    RECALIBRATED,
    VOLATILITY_MODEL,
    Comparison,
    Evaluation,
    VolatilityMetrics,
    tests_words,
)
from workflows.ml.profiles import model_kind, variance_forecasters
from workflows.reporting.fmt import ALPHA, _p, _pct
from workflows.stats.significance import MIN_PERIODS

VOL_NAMES = {
    "constant": "constant training variance",
    "rolling_24h": "rolling 24 h",
    "ewma_0.94": "EWMA (0.94)",
    "har_rv": "HAR-RV (1 h, 24 h, 1 week)",
    "har_rv_qlike": "HAR-RV fitted by QLIKE",
    "log_har": "log-HAR",
    "log_har_seasonal": "log-HAR with hour-of-day factor",
    "har_x_volume": "log-HAR-X with log volume",
    "garch_1_1": "GARCH(1,1)",
    "gjr_garch_1_1": "GJR-GARCH(1,1)",
    "garch_seasonal": "seasonally adjusted GARCH(1,1)",
    RECALIBRATED: "volatility model recalibrated in logs on validation hours",
    # the models' names, from the registry of model kinds
    **{k: model_kind(k).label or k for k in variance_forecasters()},
}
TARGETS = {24: "the mean variance of the next 24 hours", 1: "the next hour's variance (its squared return)"}


def _names(cs: list[Comparison]) -> str:
    return ", ".join(VOL_NAMES.get(c.baseline, c.baseline) for c in cs)


def best_sentence(ev: Evaluation, horizon: int) -> str | None:
    """The section's headline: which forecasters are shown worse than the best by QLIKE, and which are not."""
    bt = ev.best_tests.get(horizon)
    if bt is None:
        return None
    name = VOL_NAMES.get(bt.best, bt.best)
    test = (
        f"two-sided Diebold-Mariano ({tests_words(bt.tests.values())}) of each "
        f"against {name} (chosen by the same hours), Holm-corrected over the {len(bt.tests)} others, {bt.alpha:.0%}"
    )

    def listed(names: list[str], resolvable: bool) -> str:
        out = []
        for k in names:
            t = bt.tests[k]
            what = f"QLIKE {100 * t.mean_loss_diff / bt.mean_loss[bt.best]:+.1f}%"
            if resolvable:
                what += f", the hours resolve about {100 * t.resolvable() / bt.mean_loss[bt.best]:.1f}%"
            out.append(f"{VOL_NAMES.get(k, k)} ({what})")
        return ", ".join(out)

    worse, unresolved = bt.worse, [k for k in bt.not_shown_worse if k != bt.best]
    parts = [f"Lowest mean QLIKE of {TARGETS[horizon]}: {name} ({bt.mean_loss[bt.best]:.4f})"]
    parts.append(f"worse than it: {listed(worse, False)}" if worse else "no forecaster is shown worse than it")
    if unresolved:
        parts.append(f"not shown to differ from it: {listed(unresolved, True)}")
    return "; ".join(parts) + f" ({test})."


def confidence_set_sentence(ev: Evaluation, horizon: int) -> str | None:
    """The model confidence set at 90%, descriptive: its size under long memory is not held."""
    cs = ev.confidence_sets.get(horizon)
    if cs is None:
        return None
    kept = ", ".join(VOL_NAMES.get(n, n) for n in cs.included)
    n_in = len(cs.included)
    return (
        f"Descriptive: the model confidence set at {1 - cs.size:.0%} ({n_in} of {len(cs.pvalues)}): {kept} "
        f"(Hansen's, QLIKE, range statistic, {cs.resampling}, {cs.reps} resamples; with equally good forecasters "
        "whose losses have long memory it drops one more often than its nominal 10%, docs/benchmarks.md, so "
        "the verdicts rest on the tests against the best above)."
    )


def comparison_sentence(ev: Evaluation, model: str, horizon: int, loss: str = "QLIKE") -> str | None:
    comps = ev.volatility_comparisons(model, horizon, loss)
    if not comps:
        return None
    who = f"**{VOL_NAMES.get(model, model)}**"
    if comps[0].family == DESCRIPTIVE:
        return _descriptive_sentence(who, comps, horizon, loss)
    beaten = [c for c in comps if c.survives]
    worse = [c for c in comps if c.worse]
    unresolved = [c for c in comps if c not in beaten and c not in worse]
    test = (
        f"{loss} of {TARGETS[horizon]}, one-sided Diebold-Mariano ({_tests(comps)}), {ev.family_words(comps[0].family)}"
    )
    parts = [f"beats {_names(beaten)}" if beaten else "beats no baseline"]
    if worse:
        parts.append(
            f"is worse than {_with_skill(worse)} (the reverse one-sided test, Holm-corrected in the same family)"
        )
    if unresolved:
        parts.append(f"is not shown to differ from {_with_skill(unresolved, resolvable=True)}")
    return f"{who} " + "; ".join(parts) + f" ({test})."


def _tests(comps: list[Comparison]) -> str:
    return tests_words(c.dm for c in comps)


def _with_skill(cs: list[Comparison], resolvable: bool = False) -> str:
    """Each baseline with the model's skill against it and, for a non-rejection, the skill its test resolves."""

    def one(c: Comparison) -> str:
        what = f"skill {_pct(c.skill)}"
        if resolvable:
            what += f", the hours resolve about {100 * c.resolvable_skill:.1f}%"
        return f"{VOL_NAMES.get(c.baseline, c.baseline)} ({what})"

    return ", ".join(one(c) for c in cs)


def _descriptive_sentence(who: str, comps: list[Comparison], horizon: int, loss: str) -> str:
    lower = [c for c in comps if c.skill > 0 and c.dm.p_better < ALPHA]
    higher = [c for c in comps if c.skill < 0 and 1 - c.dm.p_better < ALPHA]
    parts = []
    if lower:
        parts.append(f"lower than {_names(lower)}")
    if higher:
        parts.append(f"higher than {_names(higher)}")
    what = "; ".join(parts) if parts else "not distinguishable from any baseline"
    return (
        f"By the {loss} of {TARGETS[horizon]} (descriptive: a few spikes decide it; raw one-sided p < {ALPHA}, "
        f"no correction, no claim), {who}'s is {what}."
    )


def summary_sentences(ev: Evaluation) -> list[str]:
    out = [best_sentence(ev, 24), best_sentence(ev, 1)]
    out += [comparison_sentence(ev, VOLATILITY_MODEL, 24), comparison_sentence(ev, VOLATILITY_MODEL, 1)]
    out += [comparison_sentence(ev, m, 24) for m in sorted({c.model for c in ev.family if c.kind == "volatility"})]
    seen, lines = set(), []
    for s in out:
        if s and s not in seen:
            seen.add(s)
            lines.append(f"Volatility: {s}")
    return lines


def _mz(v: VolatilityMetrics) -> str:
    if v.mz is None:
        return " | "
    m = v.mz
    slope = (
        "n/a (too few distinct values)"
        if m.slope != m.slope
        else f"{m.slope:.2f} [{m.slope_ci[0]:.2f}, {m.slope_ci[1]:.2f}]"
    )
    return f"{slope} | {_p(m.p_joint)}"


def forecast_table(ev: Evaluation, horizon: int) -> list[str]:
    table = ev.volatility if horizon == 24 else ev.volatility_next
    model = VOLATILITY_MODEL if VOLATILITY_MODEL in table else next(iter(table), "")
    comps = {c.baseline: c for c in ev.volatility_comparisons(model, horizon, "QLIKE")}
    mse = {c.baseline: c for c in ev.volatility_comparisons(model, horizon, "MSE")}
    cs = ev.confidence_sets.get(horizon)
    lines = [
        f"| forecast of {TARGETS[horizon]} | QLIKE | in the 90% set (MCS p; descriptive) | MSE (%^2)^2 | "
        f"{model} QLIKE skill vs it | Holm p (QLIKE) | raw p (MSE, descriptive) | log-MZ slope [95%] | "
        "MZ p (a=0, b=1) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, v in sorted(table.items(), key=lambda kv: kv[1].qlike):
        c, m = comps.get(name), mse.get(name)
        q_cells = f"{_pct(c.skill)} | {_p(c.p_holm)}{' **survives**' if c.survives else ''}" if c else "| "
        m_cells = _p(m.dm.p_better) if m else ""
        in_set = (
            (("yes" if cs.contains(name) else "no") + f" ({_p(cs.pvalues[name])})") if cs and name in cs.pvalues else ""
        )
        label = VOL_NAMES.get(name, name) + (" (the model)" if name == model else "")
        lines.append(f"| {label} | {v.qlike:.4f} | {in_set} | {v.mse:.3e} | {q_cells} | {m_cells} | {_mz(v)} |")
    return lines


def bias_sentence(ev: Evaluation, horizon: int, model: str = VOLATILITY_MODEL) -> str | None:
    table = ev.volatility if horizon == 24 else ev.volatility_next
    v = table.get(model)
    if v is None or v.mz is None:
        return None
    m = v.mz
    who = "the forecast" if model == VOLATILITY_MODEL else f"the {VOL_NAMES.get(model, model)}"
    test = (
        f"Mincer-Zarnowitz in logs and the mean of realised / forecast, HAC errors with {m.lags} lags (sized to the "
        f"memory), Bonferroni over the two; descriptive"
    )
    swings = (
        f"log-MZ slope {m.slope:.2f} [{m.slope_ci[0]:.2f}, {m.slope_ci[1]:.2f}]"
        if m.slope == m.slope
        else "no slope (too few distinct values)"
    )
    level = f"realised / forecast {m.level:.2f} on average"
    label = f"Bias ({TARGETS[horizon]}{'' if model == VOLATILITY_MODEL else ', ' + VOL_NAMES.get(model, model)})"
    if m.p_joint >= ALPHA:
        return f"{label}: no evidence of bias ({swings}; {level}; p = {_p(m.p_joint)}; {test})."
    found = []
    if m.p_slope == m.p_slope and m.p_slope < ALPHA / 2:
        found.append(f"its swings are {'too large' if m.slope < 1 else 'too small'} ({swings})")
    if m.p_level < ALPHA / 2:
        found.append(f"its level is {'too low' if m.level > 1 else 'too high'} ({level})")
    return f"{label}: {who} is biased: {'; '.join(found)} (p = {_p(m.p_joint)}; {test})."


def recalibration_sentence(ev: Evaluation, horizon: int) -> str | None:
    """The raw model beside its recalibration (descriptive: the recalibration is not in the family)."""
    table = ev.volatility if horizon == 24 else ev.volatility_next
    raw, recal = table.get(VOLATILITY_MODEL), table.get(RECALIBRATED)
    if raw is None or recal is None:
        return None
    change = recal.qlike / raw.qlike - 1 if raw.qlike > 0 else float("nan")
    return (
        f"Recalibrated in logs on each fold's validation slice (ln realised = a + b ln forecast, smearing back to "
        f"the variance; hours the model was not trained on), the volatility model's QLIKE goes from "
        f"{raw.qlike:.4f} to {recal.qlike:.4f} ({100 * change:+.1f}%; descriptive, not in the family; its place in "
        "the model confidence set is in the table)."
    )


def attention_sentence(v: VolatilityAttention) -> str:
    def group_phrase(name: str) -> str:
        g = v.group(name)
        return (
            f"{name} {g.lift:.2f}x uniform (interval {g.lift_ci[0]:.2f}-{g.lift_ci[1]:.2f}x; controls up to "
            f"{g.control_bound:.2f}x)"
        )

    marked = [g.name for g in v.groups if g.marked]
    test = "block-bootstrap 95% intervals, simultaneous over the groups"
    if marked:
        text = (
            f"The volatility model attends to {' and '.join(marked)} beyond uniform and the controls' intervals: "
            + "; ".join(group_phrase(n) for n in marked)
            + f" ({test})."
        )
        rest = [g.name for g in v.groups if not g.marked]
        if rest:
            text += " Not " + ", ".join(group_phrase(n) for n in rest) + "."
    else:
        text = (
            "The volatility model's attention marks neither the last 3 hours nor 24 hours ago beyond the controls: "
            + "; ".join(group_phrase(g.name) for g in v.groups)
            + f" ({test})."
        )

    def ci(lo_hi: tuple[float, float]) -> str:
        return f"{lo_hi[0]:+.2f} to {lo_hi[1]:+.2f}"

    ctrl = ", ".join(
        f"{c} {r:+.2f} ({ci(v.control_spearman_ci[c])})" if c in v.control_spearman_ci else f"{c} {r:+.2f}"
        for c, r in v.control_spearman.items()
    )
    rank = (
        f"Spearman {v.spearman:+.2f} over {len(v.lags)} lags, block-bootstrap 95% interval over windows "
        f"{ci(v.spearman_ci)}; controls {ctrl}"
    )
    if v.matches_acf:
        text += (
            f" Its mean profile ranks like the autocorrelation of absolute returns on the training hours, beyond the "
            f"controls ({rank})."
        )
    else:
        text += (
            f" Its mean profile does not rank like the autocorrelation of absolute returns beyond the controls: its "
            f"interval does not clear 0 and every control's ({rank})."
        )
    shared = v.shared_peaks
    text += (
        f" Attention peaks at {', '.join(map(str, v.attention_peaks))} h ago, the autocorrelation at "
        f"{', '.join(map(str, v.acf_peaks))} h"
        + (f" (shared within an hour: {', '.join(map(str, shared))} h)." if shared else " (none shared).")
    )
    h = v.hour_of_day
    if h is not None:
        hctrl = ", ".join(f"{c} {r:+.2f}" for c, r in h.control_correlation.items())
        corr = (
            ("with the size of the input 24 hours ago partialled out, " if h.partialled else "")
            + f"correlation over windows {h.correlation:+.2f}, block-bootstrap interval "
            f"{h.correlation_ci[0]:+.2f} to {h.correlation_ci[1]:+.2f}; controls {hctrl}"
        )
        if h.follows_cycle:
            text += f" Its weight on 24 hours ago follows the daily cycle of volatility ({corr})."
        else:
            text += (
                f" Its weight on 24 hours ago does not follow the daily cycle of volatility beyond what the controls "
                f"show ({corr})."
            )
    return text


def volatility_section(ev: Evaluation, an: AttentionAnalysis | None, figure: str | None) -> list[str]:
    if not ev.volatility:
        return []
    lines = [
        "",
        "## Volatility",
        "",
        "Where hourly returns have almost no linear memory, their size does: volatility clusters and follows the "
        "clock. Forecasts of the variance, scored by QLIKE (lower is better; the loss the volatility model trains "
        "on) and by the MSE of the variance; every baseline fitted on training hours only (refitted per fold): "
        + ", ".join(VOL_NAMES[b] for b in VOL_BASELINES)
        + ". The headline is every forecaster against the one with the lowest mean QLIKE: a two-sided "
        'Diebold-Mariano test of "worse than the best" (two-sided: the best is chosen by the same hours), '
        "Holm-corrected over the others; beside it, the model "
        "against each baseline, one-sided tests Holm-corrected within the volatility family. Each test is a "
        "t-test on the monthly periods' mean loss differences (Ibragimov-Mueller; with fewer than "
        f"{MIN_PERIODS} periods, EWC within the sample): valid under long memory inside the months and level "
        "shifts between them, not where the memory carries across months (docs/evaluation.md). Not shown to "
        "differ is not equal: each such sentence gives the skill the hours resolve. The model confidence set "
        "is descriptive; the MSE of the variance too. "
        "log-MZ: ln realised = a + b ln forecast with HAC errors sized to the memory (b = 1: the forecast swings "
        "as much as the variance; b < 1: too much), and the mean of realised / forecast (1: right on average); "
        "MZ p is the test of both (descriptive, not in a family).",
        "",
    ]
    for horizon in (24, 1):
        table = ev.volatility if horizon == 24 else ev.volatility_next
        if not table:
            continue
        lines += [f"### {TARGETS[horizon][0].upper() + TARGETS[horizon][1:]}", ""]
        headline = best_sentence(ev, horizon)
        lines += [f"**{headline}**", ""] if headline else []
        described = confidence_set_sentence(ev, horizon)
        lines += [described, ""] if described else []
        lines += forecast_table(ev, horizon)
        lines += [""]
        for s in (
            comparison_sentence(ev, VOLATILITY_MODEL, horizon, "QLIKE"),
            comparison_sentence(ev, VOLATILITY_MODEL, horizon, "MSE"),
            bias_sentence(ev, horizon),
            recalibration_sentence(ev, horizon),
            bias_sentence(ev, horizon, RECALIBRATED),
        ):
            if s:
                lines.append(f"- {s}")
        if horizon == 24:
            other = comparison_sentence(ev, "multitask", 24)
            if other:
                lines.append(f"- {other}")
        lines.append("")
    lines += [f"- {name} could not be computed: {err}" for name, err in ev.errors.items()]
    if an is not None and an.volatility is not None:
        lines += ["### Where the volatility model looks", "", attention_sentence(an.volatility), ""]
        if figure:
            lines += [f"![volatility attention against the autocorrelation of absolute returns]({figure})", ""]
    return lines
