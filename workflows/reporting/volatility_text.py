"""The volatility part of the report: forecasts against every baseline, bias, and where the
volatility model's attention looks, each sentence chosen by a number and its test.

Wording rules:
* "beats" a baseline only when the one-sided Diebold-Mariano test survives the Holm
  correction of the whole family; "worse than" only when the reverse one-sided test
  has p < 0.05, labelled uncorrected; otherwise "no difference";
* "unbiased" is never said: a Mincer-Zarnowitz test that does not reject says "no
  evidence of bias";
* the attention "marks" a lag group only when its lift's interval clears 1 and the
  controls' intervals; it "ranks like the autocorrelation" only when its Spearman
  correlation with the autocorrelation of absolute returns is positive, significant
  and above every control's; "follows the daily cycle" only when the window-level
  correlation's interval clears 0 and the controls' correlations.
"""

from workflows.attention.analysis import AttentionAnalysis
from workflows.attention.volatility import VolatilityAttention
from workflows.evaluation.baselines import VOL_BASELINES
from workflows.evaluation.evidence import VOLATILITY_MODEL, Comparison, Evaluation, VolatilityMetrics
from workflows.ml.profiles import model_kind, variance_forecasters
from workflows.reporting.fmt import ALPHA, _p, _pct

VOL_NAMES = {
    "constant": "constant training variance",
    "rolling_24h": "rolling 24 h",
    "ewma_0.94": "EWMA (0.94)",
    "har_rv": "HAR-RV (1 h, 24 h, 1 week)",
    "garch_1_1": "GARCH(1,1)",
    "gjr_garch_1_1": "GJR-GARCH(1,1)",
    # the models' names, from the registry of model kinds
    **{k: model_kind(k).label or k for k in variance_forecasters()},
}
TARGETS = {24: "the mean variance of the next 24 hours", 1: "the next hour's variance (its squared return)"}


def _names(cs: list[Comparison]) -> str:
    return ", ".join(VOL_NAMES.get(c.baseline, c.baseline) for c in cs)


def comparison_sentence(ev: Evaluation, model: str, horizon: int, loss: str = "QLIKE") -> str | None:
    comps = ev.volatility_comparisons(model, horizon, loss)
    if not comps:
        return None
    beaten = [c for c in comps if c.survives]
    worse = [c for c in comps if not c.survives and c.skill < 0 and 1 - c.dm.p_better < ALPHA]
    same = [c for c in comps if c not in beaten and c not in worse]
    test = (
        f"{loss} of {TARGETS[horizon]}, one-sided Diebold-Mariano (HLN) with horizon {horizon}, Holm-corrected "
        f"over the family of {len(ev.family)} comparisons"
    )
    who = f"**{VOL_NAMES.get(model, model)}**"
    if not beaten and not worse:
        return f"{who} shows no difference from any baseline ({_names(same)}; {test})."
    parts = [f"beats {_names(beaten)}" if beaten else "beats no baseline"]
    if same:
        parts.append(f"not {_names(same)}" if beaten else f"no difference from {_names(same)}")
    text = f"{who} " + "; ".join(parts) + f" ({test})."
    if worse:
        text += (
            f" It is worse than {_names(worse)} (the reverse one-sided test, p < {ALPHA}; uncorrected, descriptive)."
        )
    return text


def summary_sentences(ev: Evaluation) -> list[str]:
    out = [comparison_sentence(ev, VOLATILITY_MODEL, 24), comparison_sentence(ev, VOLATILITY_MODEL, 1)]
    out += [comparison_sentence(ev, m, 24) for m in sorted({c.model for c in ev.family if c.kind == "volatility"})]
    seen, lines = set(), []
    for s in out:
        if s and s not in seen:
            seen.add(s)
            lines.append(f"Volatility: {s}")
    return lines


def _mz(v: VolatilityMetrics) -> str:
    if v.mz is None:
        return " | | "
    m = v.mz
    slope = "n/a (constant)" if m.slope != m.slope else f"{m.slope:.2f}"
    return f"{slope} | {m.intercept:+.2f} | {_p(m.p_joint)}"


def forecast_table(ev: Evaluation, horizon: int) -> list[str]:
    table = ev.volatility if horizon == 24 else ev.volatility_next
    model = VOLATILITY_MODEL if VOLATILITY_MODEL in table else next(iter(table), "")
    comps = {c.baseline: c for c in ev.volatility_comparisons(model, horizon, "QLIKE")}
    mse = {c.baseline: c for c in ev.volatility_comparisons(model, horizon, "MSE")}
    lines = [
        f"| forecast of {TARGETS[horizon]} | QLIKE | MSE (%^2)^2 | {model} QLIKE skill vs it | Holm p (QLIKE) "
        "| Holm p (MSE) | MZ slope | MZ intercept | MZ p (a=0, b=1) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, v in sorted(table.items(), key=lambda kv: kv[1].qlike):
        c, m = comps.get(name), mse.get(name)
        q_cells = f"{_pct(c.skill)} | {_p(c.p_holm)}{' **survives**' if c.survives else ''}" if c else "| "
        m_cells = f"{_p(m.p_holm)}{' **survives**' if m.survives else ''}" if m else ""
        label = VOL_NAMES.get(name, name) + (" (the model)" if name == model else "")
        lines.append(f"| {label} | {v.qlike:.4f} | {v.mse:.3e} | {q_cells} | {m_cells} | {_mz(v)} |")
    return lines


def bias_sentence(ev: Evaluation, horizon: int) -> str | None:
    table = ev.volatility if horizon == 24 else ev.volatility_next
    v = table.get(VOLATILITY_MODEL)
    if v is None or v.mz is None:
        return None
    m = v.mz
    test = f"Mincer-Zarnowitz regression with HAC errors ({m.horizon} lags), joint test of a = 0 and b = 1, descriptive"
    if m.p_joint >= ALPHA:
        return f"Bias ({TARGETS[horizon]}): no evidence of bias (slope {m.slope:.2f}, p = {_p(m.p_joint)}; {test})."
    direction = "too large" if m.slope < 1 else "too small"
    return (
        f"Bias ({TARGETS[horizon]}): the forecast is biased (slope {m.slope:.2f}: its swings are {direction}; "
        f"intercept {m.intercept:+.2f} of the mean realised variance; p = {_p(m.p_joint)}; {test})."
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
    ctrl = ", ".join(f"{c} {r:+.2f}" for c, r in v.control_spearman.items())
    if v.matches_acf:
        text += (
            f" Its mean profile ranks like the autocorrelation of absolute returns on the training hours "
            f"(Spearman {v.spearman:+.2f} over {len(v.lags)} lags, p = {_p(v.spearman_p)}; controls {ctrl})."
        )
    else:
        text += (
            f" Its mean profile does not rank like the autocorrelation of absolute returns beyond the controls "
            f"(Spearman {v.spearman:+.2f}, p = {_p(v.spearman_p)}; controls {ctrl})."
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
            f"correlation over windows {h.correlation:+.2f}, block-bootstrap interval "
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
        + ". Targets of consecutive hours overlap by 23 hours at horizon 24, so those tests use horizon 24. "
        "MZ: Mincer-Zarnowitz regression realised = a + b x forecast (both divided by the mean realised variance), "
        "HAC errors; an unbiased forecast has a = 0, b = 1 (descriptive, not in the family).",
        "",
    ]
    for horizon in (24, 1):
        table = ev.volatility if horizon == 24 else ev.volatility_next
        if not table:
            continue
        lines += [f"### {TARGETS[horizon][0].upper() + TARGETS[horizon][1:]}", ""]
        lines += forecast_table(ev, horizon)
        lines += [""]
        for s in (
            comparison_sentence(ev, VOLATILITY_MODEL, horizon, "QLIKE"),
            comparison_sentence(ev, VOLATILITY_MODEL, horizon, "MSE"),
            bias_sentence(ev, horizon),
        ):
            if s:
                lines.append(f"- {s}")
        if horizon == 24:
            other = comparison_sentence(ev, "multitask", 24)
            if other:
                lines.append(f"- {other}")
        lines.append("")
    lines += [f"- {name} could not be fitted: {err}" for name, err in ev.errors.items()]
    if an is not None and an.volatility is not None:
        lines += ["### Where the volatility model looks", "", attention_sentence(an.volatility), ""]
        if figure:
            lines += [f"![volatility attention against the autocorrelation of absolute returns]({figure})", ""]
    return lines
