"""Paste sections of a generated report into a documentation page, between markers, unedited.

The documentation's real-data figures come from `workflows run`, not from a hand: this copies the
named `## ` sections of a report (`data/reports/<SYMBOL>/attention_report.md`) into the page
between `<!-- report:<NAME>:begin -->` and `<!-- report:<NAME>:end -->` (appended at the end when
the markers are absent), one heading level down, with the report's header (data, dates, evidence)
first. The figures the pasted text links to are copied into `docs/images/` under `<NAME>_<file>`.

    .venv/bin/python scripts/paste_report.py data/reports/BTCUSDT/attention_report.md docs/findings.md \\
        --name real_btcusdt --command "workflows run ../shared/data/Binance_BTCUSDT_1h.csv" \\
        --section "Summary" --section "Volatility"
"""

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def sections(report: str) -> tuple[str, dict[str, str]]:
    """The report's header (before the first `## `) and its `## ` sections by heading text."""
    parts = re.split(r"(?m)^## ", report)
    header, found = parts[0], {}
    for part in parts[1:]:
        title, _, body = part.partition("\n")
        found[title.strip()] = f"## {title.strip()}\n{body}"
    return header, found


def demote(text: str) -> str:
    return re.sub(r"(?m)^(#{2,5}) ", lambda m: "#" + m.group(1) + " ", text)


def paste(report_path: Path, page: Path, name: str, command: str, wanted: list[str], images: Path) -> list[str]:
    header, found = sections(report_path.read_text())
    missing = [w for w in wanted if not any(t.startswith(w) for t in found)]
    if missing:
        raise SystemExit(f"{report_path}: no section starting with {', '.join(map(repr, missing))}")
    chosen = [body for w in wanted for t, body in found.items() if t.startswith(w)]
    body = "\n".join(header.splitlines()[1:])  # without the report's title
    intro = "\n\n".join(part.strip() for part in re.split(r"\n\s*\n", body) if part.strip())
    text = demote("\n\n".join([intro, *(c.strip() for c in chosen)]))
    copied = []

    def image(m: re.Match) -> str:
        source = (report_path.parent / m.group(2)).resolve()
        if not source.exists():
            return m.group(0)
        target = images / f"{name}_{source.name}"
        shutil.copyfile(source, target)
        copied.append(target.name)
        return f"![{m.group(1)}]({Path(os.path.relpath(target, page.parent)).as_posix()})"

    text = IMAGE.sub(image, text)
    begin, end = f"<!-- report:{name}:begin -->", f"<!-- report:{name}:end -->"
    block = (
        f"{begin}\n*Pasted unedited by `scripts/paste_report.py` from the report `{command}` wrote.*\n\n"
        f"{text.strip()}\n{end}"
    )
    current = page.read_text()
    if begin in current and end in current:
        updated = current[: current.index(begin)] + block + current[current.index(end) + len(end) :]
    else:
        updated = current.rstrip() + "\n\n" + block + "\n"
    page.write_text(updated)
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("page", type=Path)
    parser.add_argument("--name", required=True, help="the markers' name, e.g. real_btcusdt")
    parser.add_argument("--command", required=True, help="the command that wrote the report (printed above it)")
    parser.add_argument("--section", action="append", required=True, help="a `## ` heading's start (repeat)")
    parser.add_argument("--images", type=Path, default=Path("docs/images"))
    args = parser.parse_args(argv)
    copied = paste(args.report, args.page, args.name, args.command, args.section, args.images)
    figures = ", ".join(copied) or "none"
    print(f"{args.page}: pasted {len(args.section)} section(s) of {args.report}; figures: {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
