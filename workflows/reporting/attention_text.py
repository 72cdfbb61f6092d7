"""The attention part of the report: sentences, table and sections, each chosen by a
number and its test (see `workflows.reporting.report` for the wording rules)."""

from workflows.attention.metrics import BUCKET_NAMES, uniform_bucket_shares
from workflows.reporting.fmt import ALPHA, _p, _pct


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


def attention_sections(analyses: dict) -> list[str]:
    """The report's attention sections, in order."""
    lines: list[str] = []
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
    return lines
