"""The Markdown attention report. Every interpreting sentence is chosen by a number
and its test on the same page; nothing is claimed that the page does not show.

Rules the wording follows:
* "beats the zero-return forecast" only with a one-sided Diebold-Mariano p < 0.05;
  otherwise "no evidence", with the skill this many test hours could detect.
* "concentrates on h hours ago" only when the attention verdict is concentrated
  (largest mean weight > 1.5x uniform and > 1.25x the strongest control);
  otherwise "no preference beyond uniform".
* time buckets are reported as lifts over the uniform share (25 / 25 / 50%), and a
  bucket is called over- or under-weighted only when its lift differs from 1 by
  more than the controls' largest difference plus 0.05.
* "the model relies on its attention" only when uniform weights raise the test
  MSE by over 1%; "attention marks the hours that matter" only when deleting the
  top-5 hours moves predictions more than 95% of 100 random 5-hour deletions and
  at least 1.5x as much on average.
* never "converged", never "detects a cycle": early stopping and lags are stated
  as what they are.
"""

from datetime import datetime, timezone

from workflows.reporting.attention_text import attention_sections, attention_sentence
from workflows.reporting.fmt import ALPHA, _p, _pct



def forecast_sentence(name: str, ev: dict) -> str:
    r = ev["returns"]
    if r["dm_vs_zero_p"] < ALPHA and r["skill_vs_zero"] > 0:
        return (f"**{name}** beats the zero-return forecast: skill {_pct(r['skill_vs_zero'])}, "
                f"Diebold-Mariano p = {_p(r['dm_vs_zero_p'])} on {r['n']} test hours.")
    return (f"**{name}**: no evidence that it beats the zero-return forecast (skill {_pct(r['skill_vs_zero'])}, "
            f"Diebold-Mariano p = {_p(r['dm_vs_zero_p'])}); with {r['n']} test hours the smallest skill this test "
            f"detects reliably is about {100 * r['min_detectable_skill']:.1f}%.")


def direction_sentence(name: str, ev: dict) -> str:
    r = ev["returns"]
    if r["direction_binomial_p"] < ALPHA and r["pesaran_timmermann_p"] < ALPHA:
        return (f"{name} calls the direction of {100 * r['direction_accuracy']:.1f}% of {r['direction_n']} hours, "
                f"better than a coin (binomial p = {_p(r['direction_binomial_p'])}, "
                f"Pesaran-Timmermann p = {_p(r['pesaran_timmermann_p'])}).")
    return (f"{name} calls the direction of {100 * r['direction_accuracy']:.1f}% of {r['direction_n']} hours: "
            f"not distinguishable from a coin (binomial p = {_p(r['direction_binomial_p'])}, "
            f"Pesaran-Timmermann p = {_p(r['pesaran_timmermann_p'])}).")


def recommendations(evaluations: dict, analyses: dict) -> list[str]:
    recs = []
    significant = [m for m, ev in evaluations.items() if ev["returns"]["dm_vs_zero_p"] < ALPHA
                   and ev["returns"]["skill_vs_zero"] > 0]
    if not significant:
        n = max(ev["returns"]["n"] for ev in evaluations.values())
        recs.append(f"No model beats the zero-return forecast on these {n} test hours: do not act on these "
                    "forecasts. Evaluate on a longer history (more test hours) before drawing conclusions.")
    else:
        recs.append("Models that beat the zero-return forecast: " + ", ".join(significant)
                    + ". Confirm on a later, untouched period before relying on them.")
    for m, an in analyses.items():
        v = an["verdict"]
        if v["concentrated"] and v["faithful"] is False:
            recs.append(f"{m}: its attention is concentrated but deleting the attended hours does not move its "
                        "forecasts more than random hours; do not read it as an explanation.")
        if not v["concentrated"]:
            recs.append(f"{m}: uniform-looking attention says nothing about which hours matter; read the "
                        "ablation and attribution checks instead of the attention map.")
    return recs


def _row(name: str, ev: dict) -> str:
    r = ev["returns"]
    cov = f"{100 * r['coverage_80']:.0f}% / {100 * r['coverage_95']:.0f}%" if "coverage_80" in r else "n/a"
    return (f"| {name} | {r['rmse_pct']:.4f} | {r['rmse_zero_pct']:.4f} | {_pct(r['skill_vs_zero'])} | "
            f"{_p(r['dm_vs_zero_p'])} | {_pct(r['skill_vs_mean'])} | {_p(r['dm_vs_mean_p'])} | "
            f"{100 * r['direction_accuracy']:.1f}% | {_p(r['direction_binomial_p'])} | {_p(r['pesaran_timmermann_p'])} | {cov} |")


def volatility_lines(evaluations: dict) -> list[str]:
    lines = []
    for name, ev in evaluations.items():
        vol = ev.get("volatility")
        if not vol:
            continue
        lines += [f"**{name}**, 24-hour realised variance (lower is better):", "",
                  "| forecast | QLIKE | MSE |", "| --- | ---: | ---: |"]
        lines += [f"| {k} | {v['qlike']:.4f} | {v['mse']:.3e} |" for k, v in vol.items()]
        best = min(vol, key=lambda k: vol[k]["qlike"])
        lines += ["", f"Lowest QLIKE: {best}." + ("" if best == "model" else
                  " The model does not beat the best baseline on this test window."), ""]
        if "garch_error" in ev:
            lines.append(f"GARCH(1,1) could not be fitted: {ev['garch_error']}")
    return lines


def write_report(
    symbol: str,
    data_note: str,
    evaluations: dict[str, dict],
    analyses: dict[str, dict],
    figures: dict[str, str],
    context: dict,
) -> str:
    """The report's Markdown text. `figures` maps a caption to a file name beside the report."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# Attention report: {symbol}", ""]
    if data_note:
        lines += [f"> {data_note}", ""]
    significant = [m for m, ev in evaluations.items()
                   if ev["returns"]["dm_vs_zero_p"] < ALPHA and ev["returns"]["skill_vs_zero"] > 0]
    n_test = max(ev["returns"]["n"] for ev in evaluations.values())
    mds = min(ev["returns"]["min_detectable_skill"] for ev in evaluations.values())
    bottom = (f"**Bottom line:** no model beats the zero-return forecast on these {n_test} test hours, and "
              f"this many hours cannot resolve a skill below about {100 * mds:.1f}%."
              if not significant else
              f"**Bottom line:** {', '.join(significant)} beat{'s' if len(significant) == 1 else ''} the "
              f"zero-return forecast on {n_test} test hours (Diebold-Mariano p < {ALPHA}).")
    lines += [
        f"Generated {now}; profile `{context.get('profile', '?')}`; test split: {context.get('test_windows', '?')} "
        f"windows from {context.get('test_start', '?')} to {context.get('test_end', '?')}.",
        "",
        "## Summary",
        "",
        bottom,
        "",
    ]
    lines += [f"- {forecast_sentence(m, ev)}" for m, ev in evaluations.items()]
    lines += [f"- {attention_sentence(m, an)}" for m, an in analyses.items()]
    lines += ["", "## Forecasts against baselines", "",
              "Next-hour log return in percent. Skill = 1 - MSE_model / MSE_baseline; p-values are one-sided "
              "(model better). Direction is scored on hours that moved.", "",
              "| model | RMSE % | zero-forecast RMSE % | skill vs zero | DM p | skill vs train mean | DM p | "
              "direction | binomial p | PT p | 80% / 95% interval coverage |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [_row(m, ev) for m, ev in evaluations.items()]
    if "coverage_80" in evaluations.get("ensemble", {}).get("returns", {}):
        lines += ["", "The ensemble's intervals come from the spread of its members alone (its members predict no "
                  "variance of their own); their coverage shows how far seed disagreement is from forecast "
                  "uncertainty."]
    lines += [""] + [f"- {direction_sentence(m, ev)}" for m, ev in evaluations.items()]
    lines += ["", f"Statistical power: with {n_test} test hours, a skill below about {100 * mds:.1f}% cannot be told "
              "apart from luck (one-sided 5% test, 80% power, assuming a forecast uncorrelated with the size of "
              "the move; heavy tails raise this).", ""]
    lines += attention_sections(analyses)
    vol = volatility_lines(evaluations)
    if vol:
        lines += ["", "## Volatility forecasts against baselines", ""] + vol
    lines += ["", "## Training", ""]
    for m, info in context.get("training", {}).items():
        lines.append(f"- {m}: {info['epochs_run']} epochs, best validation loss at epoch {info['best_epoch']}"
                     f"{' (early stopping: no improvement for the patience window)' if info.get('stopped_early') else ''}; "
                     f"{info['parameters']:,} parameters; {info['device']}; {info['wall_s']:.1f} s.")
    lines += ["", "## Recommendations", ""] + [f"- {r}" for r in recommendations(evaluations, analyses)]
    lines += ["", "## Figures", ""]
    lines += [f"![{caption}]({name})" for caption, name in figures.items()]
    return "\n".join(lines) + "\n"
