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

from workflows.attention.metrics import BUCKET_NAMES, uniform_bucket_shares

ALPHA = 0.05


def _pct(x: float, digits: int = 2) -> str:
    return f"{100 * x:+.{digits}f}%"


def _p(p: float) -> str:
    return "n/a" if p != p else (f"{p:.3f}" if p >= 0.001 else f"{p:.1e}")


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


def attention_sentence(name: str, an: dict) -> str:
    v = an["verdict"]
    s = an["summary"]
    if v["concentrated"]:
        text = (f"**{name}** concentrates its attention on **{v['peak_hour']} hours ago**: mean weight "
                f"{s['top_weights'][0]:.3f}, {v['peak_lift']:.1f}x uniform, against {v['control_lift']:.2f}x "
                f"for the strongest control; normalised entropy {s['normalised_entropy']['median']:.3f}.")
        if v.get("relied_upon") is False or v.get("faithful") is False:
            text += (" But the checks below find no evidence that the model uses it"
                     + (" (uniform weights barely change its error" if v.get("relied_upon") is False else " (")
                     + ("; deleting those hours moves its forecasts no more than deleting random hours)"
                        if v.get("faithful") is False else ")") + ": read it as a quirk of the architecture, "
                     "not as a finding about the market.")
        return text
    return (f"**{name}**: no preference beyond uniform. Its largest mean weight is {v['peak_lift']:.2f}x uniform "
            f"(controls: {v['control_lift']:.2f}x); normalised entropy {s['normalised_entropy']['median']:.4f}. "
            f"Which hour is 'top' ({v['peak_hour']} h ago) carries no meaning at this level.")


def bucket_sentence(name: str, an: dict) -> str:
    lifts = an["summary"]["profile_bucket_lifts"]
    shares = {k: lifts[k] * u for k, u in uniform_bucket_shares().items()}
    noise = max([abs(c["profile_bucket_lifts"][k] - 1) for c in an["controls"].values() for k in BUCKET_NAMES],
                default=0.0) + 0.05
    parts = ", ".join(f"{k} {100 * shares[k]:.1f}% (lift {lifts[k]:.2f})" for k in BUCKET_NAMES)
    off = [k for k in BUCKET_NAMES if abs(lifts[k] - 1) > noise]
    base = f"{name} puts {parts}; a uniform spread gives 25% / 25% / 50%."
    if not off:
        return base + f" Every lift is within {noise:.2f} of 1 (the controls' range): no bias toward recent or old hours."
    return base + " Over- or under-weighted beyond the controls' range: " + ", ".join(
        f"{k} ({'over' if lifts[k] > 1 else 'under'})" for k in off) + "."


def checks_sentences(name: str, an: dict) -> list[str]:
    out = []
    ab = an.get("uniform_ablation")
    if ab is not None:
        change = ab["relative_change"]
        if change > 0.01:
            out.append(f"{name} relies on its attention: uniform weights raise its test MSE by {_pct(change, 1)}.")
        else:
            out.append(f"{name} does not rely on its attention: uniform weights change its test MSE by {_pct(change, 1)}.")
    else:
        out.append(f"{name}: a uniform-weight ablation is not available (its attention sits inside every layer).")
    d = an.get("deletion")
    if d is not None:
        if an["verdict"].get("faithful") and not an["verdict"].get("concentrated"):
            out.append(f"Deleting its top-{d['k']} hours moves predictions {d['ratio']:.1f}x as much as deleting "
                       f"{d['k']} random hours (p = {_p(d['p_value'])}), but its weights are within "
                       f"{an['verdict']['peak_lift']:.2f}x of uniform: the top hours change from window to window "
                       "(they tend to be the hours with large inputs, which move any forecast more when deleted), "
                       "so this shows no preference for any lag.")
        elif an["verdict"].get("faithful"):
            out.append(f"Deleting its top-{d['k']} hours moves predictions {d['ratio']:.1f}x as much as deleting "
                       f"{d['k']} random hours (p = {_p(d['p_value'])}): attention marks hours that matter.")
        elif d["p_value"] < ALPHA and d["ratio"] > 1:
            out.append(f"Deleting its top-{d['k']} hours moves predictions {d['ratio']:.2f}x as much as random "
                       f"hours (p = {_p(d['p_value'])}): a consistent but small effect, too small to read the "
                       "attention map as an explanation.")
        else:
            out.append(f"Deleting its top-{d['k']} hours moves predictions {d['ratio']:.2f}x as much as random "
                       f"hours (p = {_p(d['p_value'])}): no evidence that attention marks the hours that matter.")
    at = an.get("attribution")
    if at is not None and at["median_spearman"] == at["median_spearman"]:
        out.append(f"Attention and integrated-gradients importance agree with a median Spearman rho of "
                   f"{at['median_spearman']:.2f}; gradients put most weight on {at['top_attributed_hour']} h ago.")
    return out


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


def attention_table(analyses: dict) -> list[str]:
    lines = [
        "| metric | " + " | ".join(analyses) + " |",
        "| --- | " + " | ".join("---:" for _ in analyses) + " |",
    ]

    def fmt(name, key, digits=4):
        return " | ".join(f"{an['summary'][key]['median']:.{digits}f}" for an in analyses.values())

    lines.append("| normalised entropy (median) | " + fmt("", "normalised_entropy") + " |")
    lines.append("| Gini (median) | " + fmt("", "gini") + " |")
    lines.append("| effective hours (median) | " + fmt("", "effective_hours", 1) + " |")
    lines.append("| max weight (median; uniform 0.0208) | " + fmt("", "max_weight") + " |")
    lines.append("| mean lag, hours | " + fmt("", "mean_lag", 1) + " |")
    lines.append("| hours to 50% / 80% | " + " | ".join(
        f"{an['summary']['hours_to_50']['median']:.0f} / {an['summary']['hours_to_80']['median']:.0f}"
        for an in analyses.values()) + " |")
    for bucket in BUCKET_NAMES:
        lines.append(f"| lift {bucket} ago (mean profile) | " + " | ".join(
            f"{an['summary']['profile_bucket_lifts'][bucket]:.3f}" for an in analyses.values()) + " |")
    lines.append("| top 5 hours ago (mean profile) | " + " | ".join(
        ", ".join(str(h) for h in an["summary"]["top_hours"]) for an in analyses.values()) + " |")
    lines.append("| largest lift: model / strongest control | " + " | ".join(
        f"{an['verdict']['peak_lift']:.2f}x / {an['verdict']['control_lift']:.2f}x" for an in analyses.values()) + " |")
    lines.append("| verdict | " + " | ".join(
        (f"concentrated at {an['verdict']['peak_hour']} h" if an["verdict"]["concentrated"] else "no preference beyond uniform")
        for an in analyses.values()) + " |")
    return lines


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
    lines += ["## Attention: reference design and learning design side by side", ""]
    lines += attention_table(analyses)
    lines += [""] + [f"- {bucket_sentence(m, an)}" for m, an in analyses.items()]
    for m, an in analyses.items():
        reg = an.get("regimes") or {}
        if reg.get("low_volatility") and reg.get("high_volatility"):
            lo, hi = reg["low_volatility"], reg["high_volatility"]
            lines.append(f"- {m} by volatility regime (trailing 24 h, split at the median): calm windows "
                         f"entropy {lo['normalised_entropy']['median']:.4f}, top hour {lo['top_hours'][0]} h; "
                         f"volatile windows entropy {hi['normalised_entropy']['median']:.4f}, top hour "
                         f"{hi['top_hours'][0]} h.")
    lines += ["", "## Do the attention weights mean anything?", "",
              "Controls: the same architecture untrained, and trained on shuffled targets. Attention that "
              "looks like theirs says nothing about the data.", ""]
    for m, an in analyses.items():
        for sentence in checks_sentences(m, an):
            lines.append(f"- {sentence}")
        spread = an.get("ensemble_spread")
        if spread:
            lines.append(f"- {m}: across its {len(spread['members'])} seeds the top hour is "
                         f"{', '.join(str(h) for h in spread['top_hours'])} h ago; normalised entropy varies "
                         f"by {spread['normalised_entropy_std']:.4f} (std).")
    heads = {m: an["heads"] for m, an in analyses.items() if an.get("heads")}
    for m, rows in heads.items():
        conc = [r for r in rows if r["profile_max_lift"] > 1.5]
        lines.append(f"- {m}: {len(conc)} of {len(rows)} (layer, head) pairs have a mean weight above 1.5x "
                     f"uniform" + (": " + ", ".join(f"L{r['layer']}H{r['head']} at {r['top_hour']} h" for r in conc[:8])
                                   if conc else "."))
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
