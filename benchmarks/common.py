"""Shared helpers for the benchmark scripts: machine description and docs sections."""

import os
import platform
from pathlib import Path


def machine() -> str:
    import duckdb
    import polars as pl

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, "
        f"polars {pl.__version__}, duckdb {duckdb.__version__}"
    )


def write_section(path: Path, key: str, title: str, body: str) -> None:
    """Replace (or append) the section between `<!-- key:begin -->` and `<!-- key:end -->`."""
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = f"{begin}\n## {title}\n\n{body}\n{end}"
    if begin in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)
    print(f"wrote {path}")
