"""The attention part of the report: sentences, table, sections and recommendations,
each chosen by a number and its test, read from `AttentionAnalysis` objects.

Wording rules:
* every comparison names its test: "block-bootstrap 95% interval" (circular blocks of
  48 consecutive test windows), "position-matched deletion, 200 draws, p = ...";
* "concentrates on h hours ago" only when the lower end of the peak-lift interval
  clears 1 and the upper end of the strongest control's interval; otherwise "no
  preference beyond uniform", with both intervals;
* a time bucket is over- or under-weighted only when its interval clears both 1 and
  the controls' intervals for that bucket;
* "attention marks hours that matter" only when each window's top-k deletion beats
  the position-matched null; the recency baseline (deleting the k most recent hours)
  and uniformly random hours are stated beside it;
* pools are judged against uniform over the hours they see, heads and seeds against
  the same map of the controls.
"""

from collections.abc import Callable

from workflows.attention.analysis import AttentionAnalysis, MapAnalysis
from workflows.attention.metrics import BUCKET_NAMES, AttentionSummary, Quartiles, uniform_bucket_shares
from workflows.attention.sanity import CONTROL_MAX_TRAIN_WINDOWS
from workflows.reporting.fmt import ALPHA, _p, _pct

FEW_BLOCKS = 20  # fewer independent blocks than this: intervals are rough


def _ci(ci: tuple[float, float], digits: int = 2) -> str:
    return f"{ci[0]:.{digits}f}-{ci[1]:.{digits}f}x"


def _lift_digits(lift: float) -> int:
    return 1 if lift >= 10 else 2


def attention_sentence(name: str, an: AttentionAnalysis) -> str:
    v, s = an.verdict, an.summary
    d = _lift_digits(v.peak_lift)
    interval = f"block-bootstrap 95% interval {_ci(v.peak_lift_ci, d)}"
    if v.concentrated:
        text = (
            f"**{name}** concentrates its attention on **{v.peak_hour} hours ago**: mean weight "
            f"{s.top_weights[0]:.3f}, {v.peak_lift:.{d}f}x uniform ({interval}), above 1 and above the "
            f"strongest control (interval up to {v.control_lift:.2f}x); normalised entropy "
            f"{s.normalised_entropy.median:.3f}."
        )
        unused_ablation = v.relied_upon is False
        unused_deletion = v.faithful is False and v.positions_matter is False
        if unused_ablation or unused_deletion:
            reasons = []
            if unused_ablation:
                reasons.append("uniform weights barely change its error")
            if unused_deletion:
                reasons.append(
                    "deleting those hours moves its forecasts no more than the position-matched null, "
                    "the most recent hours or random hours"
                )
            text += (
                f" But the checks below find no evidence that the model uses it ({'; '.join(reasons)}): "
                "read it as a quirk of the architecture, not as a finding about the market."
            )
        return text
    why = (
        "the interval includes 1"
        if v.peak_lift_ci[0] <= 1
        else f"the interval does not clear the controls' (up to {v.control_lift:.2f}x)"
    )
    return (
        f"**{name}**: no preference beyond uniform. Its largest mean weight is {v.peak_lift:.{d}f}x uniform "
        f"({interval}; controls up to {v.control_lift:.2f}x): {why}. Normalised entropy "
        f"{s.normalised_entropy.median:.4f}. Which hour is 'top' ({v.peak_hour} h ago) carries no meaning "
        "at this level."
    )


def _control_bucket_range(an: AttentionAnalysis, bucket: str) -> tuple[float, float] | None:
    cis = [b.bucket_lift_ci[bucket] for b in an.control_bootstrap.values() if bucket in b.bucket_lift_ci]
    return (min(c[0] for c in cis), max(c[1] for c in cis)) if cis else None


def bucket_sentence(name: str, an: AttentionAnalysis) -> str:
    b = an.bootstrap
    uniform = uniform_bucket_shares(b.hours)
    parts = ", ".join(
        f"{k} {100 * b.bucket_lifts[k] * uniform[k]:.1f}% (lift {b.bucket_lifts[k]:.2f}, {_ci(b.bucket_lift_ci[k])})"
        for k in BUCKET_NAMES
        if k in b.bucket_lifts
    )
    off = []
    for k in b.bucket_lifts:
        lo, hi = b.bucket_lift_ci[k]
        ctrl = _control_bucket_range(an, k) or (1.0, 1.0)
        if lo > max(1.0, ctrl[1]):
            off.append(f"{k} (over)")
        elif hi < min(1.0, ctrl[0]):
            off.append(f"{k} (under)")
    base = (
        f"{name} puts {parts} (block-bootstrap 95% intervals, simultaneous over the buckets); a uniform "
        "spread gives " + " / ".join(f"{100 * uniform[k]:.0f}%" for k in b.bucket_lifts) + "."
    )
    if not off:
        return base + (
            " Every interval overlaps 1 or the controls' intervals: no preference beyond uniform, no "
            "bias toward recent or old hours."
        )
    return base + " Over- or under-weighted beyond both 1 and the controls' intervals: " + ", ".join(off) + "."


def _deletion_sentences(name: str, an: AttentionAnalysis) -> list[str]:
    d, v = an.deletion, an.verdict
    if d is None:
        return []
    test = f"position-matched deletion on {d.windows:,} test windows, {d.draws} draws, p = {_p(d.matched_p_value)}"
    if d.nulls_computed_on:  # the month in progress appends its windows daily and redraws its nulls weekly
        test += (
            f"; the current month's p-values were last computed on {d.nulls_computed_on}, on its hours through "
            f"{d.nulls_through}"
        )
    shared = f"the matched windows share {100 * d.matched_overlap:.0f}% of those positions"
    if d.faithful and not v.concentrated:
        first = (
            f"Deleting each window's top-{d.k} hours moves {name}'s forecasts {d.matched_ratio:.1f}x as much as "
            f"deleting the top-{d.k} positions of other windows ({test}; {shared}), but its weights show no "
            "preference beyond uniform: the top hours change from window to window (they may simply be the hours "
            "with the largest inputs, which move any forecast more when deleted), so this shows no preference "
            "for any lag."
        )
    elif d.matched_p_value < ALPHA and d.matched_ratio >= d.margin and not d.beats_size:
        first = (
            f"Deleting each window's top-{d.k} hours moves {name}'s forecasts {d.matched_ratio:.1f}x as much as "
            f"deleting the top-{d.k} positions of other windows ({test}; {shared}), but only {d.size_ratio:.2f}x as "
            f"much as deleting the window's {d.k} hours with the largest inputs (size baseline, block-bootstrap 95% "
            f"interval {_ci(d.size_ratio_ci)}): the map may only point at large inputs, which move any forecast "
            "when deleted, so it is not read as faithful."
        )
    elif d.faithful:
        first = (
            f"Deleting each window's top-{d.k} hours moves {name}'s forecasts {d.matched_ratio:.1f}x as much as "
            f"deleting the top-{d.k} positions of other windows ({test}; {shared}) and {d.size_ratio:.1f}x as much "
            f"as deleting its {d.k} largest inputs (interval {_ci(d.size_ratio_ci)}): window by window, "
            "attention marks hours that matter."
        )
    elif d.matched_p_value < ALPHA and d.matched_ratio > 1:
        first = (
            f"Deleting each window's top-{d.k} hours moves {name}'s forecasts {d.matched_ratio:.2f}x as much as "
            f"deleting other windows' top-{d.k} positions ({test}; {shared}): a consistent effect, but below "
            f"the {d.margin:.1f}x margin, too small to read single windows' maps as explanations."
        )
    else:
        first = (
            f"Deleting each window's top-{d.k} hours moves {name}'s forecasts {d.matched_ratio:.2f}x as much as "
            f"deleting other windows' top-{d.k} positions ({test}; {shared}): window by window the map marks "
            "nothing beyond where it looks on average."
        )
    baselines = (
        f"Beside it: {d.recency_ratio:.2f}x the change from deleting the {d.k} most recent hours (recency "
        f"baseline; block-bootstrap 95% interval {_ci(d.recency_ratio_ci)}) and {d.random_ratio:.2f}x that "
        f"of {d.k} uniformly random hours ({d.random_draws} draws, p = {_p(d.random_p_value)}, not "
        "position matched)"
    )
    beats_recency = d.recency_ratio_ci[0] > 1
    beats_random = d.random_p_value < ALPHA and d.random_ratio >= d.margin
    if d.positions_matter:
        baselines += ": the hours it attends to matter more than recent or random ones."
    elif beats_random:
        baselines += (
            ": the attended hours matter more than random ones but no more than the most recent ones, so "
            "the map says no more than a recency prior."
        )
    elif beats_recency:
        baselines += (
            f": the attended hours matter more than the most recent ones, but not clearly more than random "
            f"ones (p < {ALPHA} and {d.margin:.1f}x needed)."
        )
    else:
        baselines += ": the attended hours matter no more than the most recent hours or random hours."
    return [first, baselines]


def checks_sentences(name: str, an: AttentionAnalysis) -> list[str]:
    out = []
    ab = an.ablation
    if ab is not None:
        ci = f"block-bootstrap 95% interval {_pct(ab.relative_change_ci[0], 1)} to {_pct(ab.relative_change_ci[1], 1)}"
        what = "test MSE" if ab.loss == "MSE" else "test QLIKE of the next hour's variance"
        if ab.relied_upon:
            out.append(
                f"{name} relies on its attention: uniform weights raise its {what} by "
                f"{_pct(ab.relative_change, 1)} ({ci})."
            )
        else:
            out.append(
                f"{name} does not rely on its attention: uniform weights change its {what} by "
                f"{_pct(ab.relative_change, 1)} ({ci}; relied upon needs more than +1.0% with the interval "
                "above 0)."
            )
    elif an.deletion is not None:
        out.append(f"{name}: a uniform-weight ablation is not available (its attention sits inside every layer).")
    out += _deletion_sentences(name, an)
    at = an.attribution
    if at is not None and at.median_spearman == at.median_spearman:
        out.append(
            f"Attention and integrated-gradients importance agree with a median Spearman rho of "
            f"{at.median_spearman:.2f} over {at.windows} windows; gradients put most weight on "
            f"{at.top_attributed_hour} h ago."
        )
    return out


def _map_phrase(m: MapAnalysis) -> str:
    d = _lift_digits(m.peak_lift)
    text = f"{m.name} peaks {m.peak_hour} h ago at {m.peak_lift:.{d}f}x ({_ci(m.peak_lift_ci, d)}"
    text += f"; controls up to {m.control_bound:.2f}x)" if m.control_bound != 1.0 else ")"
    return text + (": concentrated" if m.concentrated else ": no preference beyond uniform")


def pool_sentence(name: str, an: AttentionAnalysis) -> str | None:
    if not an.pools:
        return None
    return (
        f"{name}'s multi-scale pools, each against uniform over the hours it sees (lift 1 = 1/s for a pool of s "
        "hours) and the controls' same pool, block-bootstrap 95% intervals: "
        + "; ".join(_map_phrase(p) for p in an.pools)
        + "."
    )


def head_sentence(name: str, an: AttentionAnalysis) -> str | None:
    if not an.heads:
        return None
    conc = [h for h in an.heads if h.concentrated]
    text = (
        f"{name}: {len(conc)} of {len(an.heads)} (layer, head) maps concentrate (lower end of the block-bootstrap "
        "95% interval of the peak lift above 1 and above the controls' same head)"
    )
    if conc:
        text += ": " + "; ".join(
            f"{h.name} at {h.peak_hour} h, {h.peak_lift:.1f}x ({_ci(h.peak_lift_ci, 1)})"
            for h in sorted(conc, key=lambda h: -h.peak_lift)[:8]
        )
    rest = len(an.heads) - len(conc)
    return text + (f"; the other {rest} show no preference beyond uniform." if rest else ".")


def seed_sentence(name: str, an: AttentionAnalysis) -> str:
    sp = an.seed_spread
    if sp is None or not sp.members:
        return f"{name}: trained with one seed; no seed spread is available."
    lifts = sp.peak_lifts
    return (
        f"{name} across {len(sp.members)} seeds ({sp.source}): peak hours "
        f"{', '.join(str(h) for h in sp.peak_hours)} h ago; peak lifts {min(lifts):.2f}x to {max(lifts):.2f}x; "
        f"{sp.concentrated} of {len(sp.members)} seeds concentrated (block-bootstrap 95% interval above 1 and "
        f"the controls'); normalised entropy varies by {sp.normalised_entropy_std:.4f} (std)."
    )


def attention_table(analyses: dict[str, AttentionAnalysis]) -> list[str]:
    lines = [
        "| metric | " + " | ".join(analyses) + " |",
        "| --- | " + " | ".join("---:" for _ in analyses) + " |",
    ]

    def fmt(metric: Callable[[AttentionSummary], Quartiles], digits: int = 4) -> str:
        return " | ".join(f"{metric(an.summary).median:.{digits}f}" for an in analyses.values())

    lines.append("| normalised entropy (median) | " + fmt(lambda s: s.normalised_entropy) + " |")
    lines.append("| Gini (median) | " + fmt(lambda s: s.gini) + " |")
    lines.append("| effective hours (median) | " + fmt(lambda s: s.effective_hours, 1) + " |")
    lines.append("| max weight (median; uniform 0.0208) | " + fmt(lambda s: s.max_weight) + " |")
    lines.append("| mean lag, hours | " + fmt(lambda s: s.mean_lag, 1) + " |")
    lines.append(
        "| hours to 50% / 80% | "
        + " | ".join(
            f"{an.summary.hours_to_50.median:.0f} / {an.summary.hours_to_80.median:.0f}" for an in analyses.values()
        )
        + " |"
    )
    for bucket in BUCKET_NAMES:
        lines.append(
            f"| lift {bucket} ago (95% interval) | "
            + " | ".join(
                f"{an.bootstrap.bucket_lifts[bucket]:.3f} ({_ci(an.bootstrap.bucket_lift_ci[bucket])})"
                if bucket in an.bootstrap.bucket_lifts
                else "n/a"
                for an in analyses.values()
            )
            + " |"
        )
    lines.append(
        "| top 5 hours ago (mean profile) | "
        + " | ".join(", ".join(str(h) for h in an.summary.top_hours) for an in analyses.values())
        + " |"
    )
    lines.append(
        "| peak lift (95% interval) | "
        + " | ".join(f"{an.verdict.peak_lift:.2f}x ({_ci(an.verdict.peak_lift_ci)})" for an in analyses.values())
        + " |"
    )
    lines.append(
        "| strongest control, upper end | "
        + " | ".join(f"{an.verdict.control_lift:.2f}x" for an in analyses.values())
        + " |"
    )
    lines.append(
        "| verdict | "
        + " | ".join(
            (f"concentrated at {an.verdict.peak_hour} h" if an.verdict.concentrated else "no preference beyond uniform")
            for an in analyses.values()
        )
        + " |"
    )
    return lines


def method_lines(analyses: dict[str, AttentionAnalysis]) -> list[str]:
    """How the intervals and the controls were made, said once."""
    boot = next(iter(analyses.values())).bootstrap
    blocks = boot.windows // max(boot.block, 1)
    lines = [
        f"Intervals: circular block bootstrap over the {boot.windows:,} test windows in blocks of {boot.block} "
        f"consecutive windows (neighbouring windows share {boot.hours - 1} of their {boot.hours} input hours), "
        f"{boot.resamples} resamples, 95%. The peak's interval is read off a simultaneous band over all hours, so "
        "it does not favour the hour that happened to come out highest; the bucket intervals are a simultaneous "
        "band over the buckets too."
        + (f" Only {blocks} blocks: read the intervals as rough." if blocks < FEW_BLOCKS else "")
    ]
    setups = {m: an.control_setup for m, an in analyses.items() if an.control_setup is not None}
    if setups:
        shared: dict[str, list[str]] = {}
        for m, s in setups.items():
            shared.setdefault(s.key, []).append(m)
        s0 = next(iter(setups.values()))
        span = (
            f"the most recent {s0.shuffled_train_windows:,} of the {s0.train_windows:,} training windows"
            if s0.shuffled_train_windows < s0.train_windows
            else f"all {s0.train_windows:,} training windows"
        )
        text = (
            "Controls: the same architecture untrained, and trained on shuffled targets. Attention that looks "
            "like theirs says nothing about the data. To bound the cost, the shuffled-target control trains on "
            f"{span} (capped at the most recent {CONTROL_MAX_TRAIN_WINDOWS:,}, about 365 days), and one control "
            "is trained per distinct architecture and training config"
        )
        groups = [ms for ms in shared.values() if len(ms) > 1]
        text += ": " + "; ".join(f"{', '.join(ms)} share one" for ms in groups) + "." if groups else "."
        lines.append(text)
    return lines


def attention_sections(analyses: dict[str, AttentionAnalysis], source: str = "") -> list[str]:
    """The report's attention sections, in order; `source`: which models and hours they read."""
    lines: list[str] = []
    lines += ["## Attention: reference design and learning design side by side", ""]
    if source:
        lines += [source, ""]
    lines += attention_table(analyses)
    lines += ["", *method_lines(analyses)]
    lines += [""] + [f"- {bucket_sentence(m, an)}" for m, an in analyses.items()]
    for m, an in analyses.items():
        lo = an.regimes.low_volatility if an.regimes else None
        hi = an.regimes.high_volatility if an.regimes else None
        if lo is not None and hi is not None:
            lines.append(
                f"- {m} by volatility regime (trailing 24 h, split at the median; descriptive, no test): "
                f"calm windows entropy {lo.normalised_entropy.median:.4f}, top hour "
                f"{lo.top_hours[0]} h; volatile windows entropy {hi.normalised_entropy.median:.4f}, "
                f"top hour {hi.top_hours[0]} h."
            )
    pools_heads = [s for m, an in analyses.items() for s in (pool_sentence(m, an), head_sentence(m, an)) if s]
    if pools_heads:
        lines += ["", "## Every pool and every head", ""] + [f"- {s}" for s in pools_heads]
    lines += ["", "## Do the attention weights mean anything?", ""]
    for m, an in analyses.items():
        lines += [f"- {s}" for s in checks_sentences(m, an)]
    lines += ["", "## Across training seeds", ""] + [f"- {seed_sentence(m, an)}" for m, an in analyses.items()]
    spread = period_spread_lines(analyses)
    if spread:
        lines += ["", "## Across forecast periods", "", *spread]
    return lines


def _flag(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "no")


def period_spread_sentence(name: str, an: AttentionAnalysis) -> str:
    """One model's per-period readings in a sentence: how many periods agree with the pooled verdict."""
    ps = an.periods
    n = len(ps)
    lifts = [p.peak_lift for p in ps]
    hours = sorted({p.peak_hour for p in ps})
    conc = sum(p.concentrated for p in ps)
    relied = [p.relied_upon for p in ps if p.relied_upon is not None]
    faithful = [p.faithful for p in ps if p.faithful is not None]
    more = " ..." if len(hours) > 8 else ""
    parts = [
        f"{name} across {n} period(s): peak lift {min(lifts):.2f}x to {max(lifts):.2f}x (median "
        f"{sorted(lifts)[n // 2]:.2f}x), peak hours {', '.join(map(str, hours[:8]))}{more} "
        f"h ago; concentrated above its controls in {conc} of {n} (pooled: {_flag(an.verdict.concentrated)})"
    ]
    if relied:
        parts.append(f"relied upon in {sum(relied)} of {len(relied)} (pooled: {_flag(an.verdict.relied_upon)})")
    if faithful:
        parts.append(f"faithful in {sum(faithful)} of {len(faithful)} (pooled: {_flag(an.verdict.faithful)})")
    return "; ".join(parts) + "."


def period_spread_lines(analyses: dict[str, AttentionAnalysis]) -> list[str]:
    """The per-period spread of every pooled analysis: a sentence per model and one table of every reading."""
    pooled = {m: an for m, an in analyses.items() if an.periods}
    if not pooled:
        return []
    lines = [
        "Each model's verdicts above pool its forecast periods' windows; each period's own reading (its model on "
        "its month's hours, against controls trained for that month) shows how much they move from month to "
        "month.",
        "",
    ]
    lines += [f"- {period_spread_sentence(m, an)}" for m, an in pooled.items()]
    lines += [
        "",
        "| model | period | hours | peak hour | peak lift [95% CI] | concentrated | relied upon | faithful |",
        "| --- | --- | ---: | ---: | --- | --- | --- | --- |",
    ]
    for m, an in pooled.items():
        for p in an.periods:
            lines.append(
                f"| {m} | {p.period} | {p.windows:,} | {p.peak_hour} | {p.peak_lift:.2f}x {_ci(p.peak_lift_ci)} | "
                f"{_flag(p.concentrated)} | {_flag(p.relied_upon)} | {_flag(p.faithful)} |"
            )
    return lines


def attention_recommendations(analyses: dict[str, AttentionAnalysis]) -> list[str]:
    """What to do with each model's attention map, from its verdict."""
    recs = []
    for m, an in analyses.items():
        v = an.verdict
        if not v.concentrated:
            recs.append(
                f"{m}: uniform-looking attention says nothing about which hours matter; read the "
                "ablation and attribution checks instead of the attention map."
            )
            continue
        if v.relied_upon is False or (v.faithful is False and v.positions_matter is False):
            recs.append(
                f"{m}: its attention is concentrated at {v.peak_hour} h, but uniform weights or deleting the "
                "attended hours (against the position-matched null, the most recent hours and random hours) "
                "show no use of it; do not read it as an explanation."
            )
        elif v.faithful is False and v.positions_matter:
            recs.append(
                f"{m}: read its mean attention profile (peak {v.peak_hour} h ago), not single windows' maps: "
                "the hours it attends to matter more than recent or random hours, but window by window the "
                "map adds nothing beyond its average."
            )
        sp = an.seed_spread
        hours = [s.peak_hour for s in sp.members if s.concentrated] if sp is not None else []
        if sp is not None and (sp.concentrated < len(sp.members) or max(hours) - min(hours) > 1):
            recs.append(
                f"{m}: the peak is not stable across seeds ({', '.join(map(str, sp.peak_hours))} h, "
                f"{sp.concentrated} of {len(sp.members)} concentrated); confirm it with more seeds before "
                "relying on it."
            )
    return recs
