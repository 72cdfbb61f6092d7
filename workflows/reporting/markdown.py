"""Small Markdown writers shared by the UI metadata and the report."""

import polars as pl


def _cell(value) -> str:
    if value is None:
        return ""
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")[:120]


def frame_to_markdown(frame: pl.DataFrame, limit: int = 20) -> str:
    """A Markdown table of the first `limit` rows, saying how many were left out."""
    if frame.is_empty():
        return "_no rows_"
    shown = frame.head(limit)
    lines = [
        "| " + " | ".join(shown.columns) + " |",
        "| " + " | ".join("---" for _ in shown.columns) + " |",
    ]
    for row in shown.iter_rows():
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    if frame.height > limit:
        lines.append(f"\n_{frame.height - limit} more rows not shown_")
    return "\n".join(lines)


def counts_to_markdown(counts: dict, key: str = "reason", value: str = "rows") -> str:
    if not counts:
        return "_none_"
    lines = [f"| {key} | {value} |", "| --- | ---: |"]
    lines += [f"| {_cell(k)} | {v} |" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])]
    return "\n".join(lines)
