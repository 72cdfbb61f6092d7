"""What a gate decision shows: the figures for the UI's metadata, the tests table and the Markdown record.

Plain values only (the Dagster layer wraps the Markdown in `MetadataValue.md`), so the words and
numbers the UI shows and the record beside the report keep are built in one place."""

from collections.abc import Sequence
from datetime import datetime, timezone

from workflows.serving.gate_closes import Look
from workflows.serving.promotion import GateDecision

GATE_RECORD = "promotion_gate.md"  # beside the report: the newest decision, in words and with every figure
DECISION_HEADING = "## The gate's decision"
TESTED_HEADING = "## The newest decision that ran its test"
HISTORY_HEADING = "## Every look of the gate"


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.2%}" if pct else f"{value:.4g}"


def _table(rows: list[dict[str, str]]) -> str:
    """A Markdown table of string cells (serving sits below reporting, so it keeps its own)."""
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    return "\n".join(lines + ["| " + " | ".join(r[c] for c in head) + " |" for r in rows])


def _calibration_table(d: GateDecision) -> str:
    holm = d.calibration_holm or {}
    rows = [
        {
            "interval": f"{pct}%",
            "coverage_before": _fmt(getattr(d, f"raw_coverage_{pct}"), pct=True).lstrip("+"),
            "coverage_after": _fmt(getattr(d, f"coverage_{pct}"), pct=True).lstrip("+"),
            "kupiec_p_mc": _fmt(getattr(d, f"kupiec_p_{pct}")),
            "kupiec_p_holm": _fmt(holm.get(f"kupiec_{pct}")),
            "christoffersen_p_mc": _fmt(getattr(d, f"christoffersen_p_{pct}")),
            "christoffersen_p_holm": _fmt(holm.get(f"christoffersen_{pct}")),
            "conformal_q_next": _fmt(getattr(d, f"conformal_q{pct}")),
            "at_level": _fmt(getattr(d, f"conformal_level_{pct}"), pct=True).lstrip("+"),
        }
        for pct in (80, 95)
    ]
    return _table(rows)


def gate_tests_markdown(d: GateDecision) -> str:
    """The test the decision rests on, and the calibration family beside it, as Markdown."""
    if d.self_comparison or d.e_value is None:
        return ""
    comparator = "the incumbent" if d.comparator == "incumbent" else "the zero-return forecast"
    null = f"worse than {comparator} by {d.margin:.1%} of its MSE or more" if d.comparator == "incumbent" else ""
    null = null or f"no more accurate than {comparator}"
    text = (
        f"Anytime-valid test {d.test_index} on this symbol (normal-mixture e-process on the per-hour squared-error "
        f'differential, tightest at {d.t_opt} hours, crossings counted from hour {d.min_hours}): null "{null}", '
        f"level alpha_k = 6 x {d.alpha} / (pi^2 k^2) = {_fmt(d.level)}, threshold 1/alpha_k = {_fmt(d.threshold)}. "
        f"On {d.hours} evidence hours ({d.first_hour} .. {d.last_hour}): E now {_fmt(d.e_value)}, largest "
        f"{_fmt(d.e_max)}{', first reached the threshold at ' + d.crossed_hour if d.crossed_hour else ''}; MSE "
        f"candidate {_fmt(d.mse_candidate)}, {comparator} "
        f"{_fmt(d.mse_current if d.comparator == 'incumbent' else d.mse_zero)} (skill "
        f"{_fmt(d.skill_vs_comparator, pct=True)}); a fixed-n test on these hours would resolve about "
        f"{_fmt(d.resolvable_excess, pct=True).lstrip('+')}."
    )
    if d.coverage_hours is not None:
        text += (
            f"\n\nServed intervals, adaptive conformal scaled by the predictive sd (quantiles in sds; the served ones "
            f"come from the same procedure over the forecast log): the first "
            f"{d.calibration_hours} hours only calibrate, coverage tested on the last {d.coverage_hours}; Monte Carlo "
            f"p-values, Holm-adjusted as one family with the Brier test at {d.alpha}; before: the Gaussian interval "
            f"on the same hours.\n\n" + _calibration_table(d)
        )
    if d.brier is not None and d.brier_base_rate is not None and d.brier_skill is not None:
        holm = (d.calibration_holm or {}).get("brier")
        text += (
            f"\n\nDirection probabilities: Brier {d.brier:.4f} vs base rate {d.brier_base_rate:.4f} "
            f"(skill {d.brier_skill:+.2%}, p(base rate better) = {_fmt(d.p_base_rate_better)}, Holm-adjusted "
            f"{_fmt(holm)})."
        )
    return text


META_FIELDS = (
    "hours_offered",
    "hours_in_sample_candidate",
    "hours_without_window",
    "first_hour",
    "last_hour",
    "candidate_last_target",
    "current_window_known",
    "alpha",
    "test_index",
    "level",
    "threshold",
    "margin",
    "min_hours",
    "t_opt",
    "e_value",
    "e_max",
    "crossed_hour",
    "resolvable_excess",
    "mse_candidate",
    "mse_zero",
    "skill_vs_zero",
    "skill_vs_comparator",
    "calibration_hours",
    "coverage_hours",
    "coverage_80",
    "kupiec_p_80",
    "christoffersen_p_80",
    "conformal_q80",
    "coverage_95",
    "kupiec_p_95",
    "christoffersen_p_95",
    "conformal_q95",
    "brier",
    "brier_base_rate",
    "brier_skill",
    "p_base_rate_better",
)


def gate_metadata(d: GateDecision) -> dict:
    """What the UI shows for one gate decision (plain values; `tests` is Markdown): the verdict, every figure it
    decided on and the hours it rests on. Missing figures are left out."""
    meta = {
        "promoted": d.promoted,
        "basis": d.basis or "refused",
        "comparator": d.comparator or "none",
        "reason": d.reason,
        "self_comparison": d.self_comparison,
        "hours_compared": d.hours,
        "hours_in_sample_incumbent": d.hours_in_sample_current,
        "incumbent_last_target": d.current_last_target,
        "mse_incumbent": d.mse_current,
        **{name: getattr(d, name) for name in META_FIELDS},
        "tests": gate_tests_markdown(d),
    }
    return {k: v for k, v in meta.items() if v is not None and v != ""}


def gate_record(symbol: str, candidate: str, decision: GateDecision, serving: str) -> str:
    """The newest gate decision as Markdown: what was decided, on which hours, every figure it decided on."""
    d = decision
    hours = f"{d.first_hour} .. {d.last_hour}" if d.first_hour and d.last_hour else "none"
    return "\n".join(
        [
            f"# Promotion gate: {symbol}",
            "",
            f"Decided {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on the candidate `{candidate}`.",
            "",
            DECISION_HEADING,
            "",
            f"**{'PROMOTED' if d.promoted else 'REFUSED'}**: {d.reason}",
            "",
            f"- serving now: {serving}",
            f"- evidence hours: {d.hours} ({hours}); hours offered {d.hours_offered}, of which inside the "
            f"candidate's training targets {d.hours_in_sample_candidate}, inside the incumbent's "
            f"{d.hours_in_sample_current}; crossings count from hour {d.min_hours}",
            "",
            gate_tests_markdown(d),
            "",
        ]
    )


def with_newest_tested(record: str, decision: GateDecision, previous: str) -> str:
    """A decision that ran no test (a self-comparison, too few hours) keeps the newest decision that ran its test
    below it, so the record never loses the figures the serving state rests on."""
    if decision.decided or not previous:
        return record
    if TESTED_HEADING in previous:  # the previous record was itself untested: carry what it carried
        earlier = previous.split(TESTED_HEADING, 1)[1]
    elif DECISION_HEADING in previous:
        earlier = previous.split(DECISION_HEADING, 1)[1]
    else:
        return record
    earlier = earlier.split(HISTORY_HEADING, 1)[0]  # the history is written anew below
    return f"{record.rstrip()}\n\n{TESTED_HEADING}\n{earlier.rstrip()}\n"


def with_history(record: str, looks: Sequence[Look]) -> str:
    """The record with every look of the gate below it, oldest first."""
    if not looks:
        return record
    intro = (
        "Oldest first. A month's candidate is judged at its month's close on the hours through that close (a "
        "backfill judges each month in turn, as daily runs would have), the newest on every hour landed so far; "
        "each look's test k spends alpha_k of the lifetime budget once (a test seen again keeps its k)."
    )
    return f"{record.rstrip()}\n\n{HISTORY_HEADING}\n\n{intro}\n\n{history_markdown(looks)}\n"


def history_markdown(looks: Sequence[Look]) -> str:
    """Every look as one Markdown table, oldest first (empty string for none)."""
    if not looks:
        return ""
    head = "| judged | candidate's month | look | evidence hours | comparator | test k | E max / threshold | " + (
        "skill vs comparator | decision | serving after |"
    )
    rows = [head, "| " + " | ".join(["---"] * 10) + " |"]
    for look in looks:
        e = "n/a" if look.e_max is None or look.threshold is None else f"{look.e_max:.3g} / {look.threshold:.3g}"
        skill = "n/a" if look.skill_vs_comparator is None else f"{look.skill_vs_comparator:+.2%}"
        span = f"{look.hours} ({look.first_hour} .. {look.last_hour})" if look.first_hour else str(look.hours)
        verdict = "PROMOTED" if look.promoted else ("REFUSED" if look.decided else "not decided")
        rows.append(
            f"| {look.judged_at[:16]} | {look.period[:7]} | {'month close' if look.at_close else 'hours so far'} | "
            f"{span} | {look.comparator or 'n/a'} | {look.test_index or 'n/a'} | {e} | {skill} | {verdict} | "
            f"{look.serving or 'zero-return forecast'} |"
        )
    return "\n".join(rows)
