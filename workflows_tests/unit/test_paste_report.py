"""scripts/paste_report.py: the documentation's real-data sections are the report's text, unedited."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "paste_report.py"
spec = importlib.util.spec_from_file_location("paste_report", SCRIPT)
assert spec and spec.loader
paste_report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(paste_report)

REPORT = """# Attention report: BTCUSDT

> SYNTHETIC data.

Generated 2026-12-03; test hours 2020-07-01 .. 2021-06-30.

## Summary

**Bottom line:** no model beats the zero-return forecast.

## Volatility

### The mean variance of the next 24 hours

| model | QLIKE |
| --- | ---: |
| log_har | 0.40 |

![coverage](figures/interval_coverage.png)

## Training

not wanted
"""


def test_pastes_the_named_sections_between_markers_and_replaces_them_on_a_rerun(tmp_path):
    (tmp_path / "reports" / "figures").mkdir(parents=True)
    report = tmp_path / "reports" / "attention_report.md"
    report.write_text(REPORT)
    (tmp_path / "reports" / "figures" / "interval_coverage.png").write_bytes(b"png")
    images = tmp_path / "docs" / "images"
    images.mkdir(parents=True)
    page = tmp_path / "docs" / "findings.md"
    page.write_text("# Findings\n\nkept\n")
    copied = paste_report.paste(report, page, "real_btc", "workflows run X.csv", ["Summary", "Volatility"], images)
    text = page.read_text()
    assert text.startswith("# Findings\n\nkept\n") and "<!-- report:real_btc:begin -->" in text
    assert "### Summary" in text and "#### The mean variance" in text and "| log_har | 0.40 |" in text
    assert "not wanted" not in text and "# Attention report" not in text
    # the report's header (what the figures are of), its paragraphs kept apart
    assert "> SYNTHETIC data.\n\nGenerated 2026-12-03; test hours 2020-07-01 .. 2021-06-30." in text
    assert copied == ["real_btc_interval_coverage.png"] and "(images/real_btc_interval_coverage.png)" in text
    # a rerun on a newer report replaces the block and leaves the rest of the page alone
    page.write_text(page.read_text() + "\n## After\n")
    report.write_text(REPORT.replace("0.40", "0.39"))
    paste_report.paste(report, page, "real_btc", "workflows run X.csv", ["Volatility"], images)
    text = page.read_text()
    assert "0.39" in text and "0.40" not in text and "### Summary" not in text
    assert text.count("<!-- report:real_btc:begin -->") == 1 and text.rstrip().endswith("## After")


def test_a_section_the_report_lacks_is_an_error_naming_it(tmp_path):
    report = tmp_path / "attention_report.md"
    report.write_text(REPORT)
    page = tmp_path / "findings.md"
    page.write_text("")
    with pytest.raises(SystemExit, match="'Served forecast'"):
        paste_report.paste(report, page, "x", "cmd", ["Served forecast"], tmp_path)
