"""A corpus of malformed candle files through `workflows ingest`: each gets a clear
message naming the file and the rule, good rows land, and the original bytes are kept
(processed/ for files that were read, quarantine/ with a .reason for the rest)."""

import gzip

import duckdb
import pytest

from workflows.cli.commands import main
from workflows_tests.unit.test_malformed_inputs import FILE_CASES, GOOD, HEADER, ROW_CASES, csv

pytestmark = pytest.mark.slow

EXTRA_FILE_CASES = [
    (
        "BTCUSDT-semicolons.csv",
        ("timestamp;open;high;low;close;volume\n" + "\n".join(line.replace(",", ";") for line in GOOD) + "\n").encode(),
        "unrecognised columns",
    ),
    ("BTCUSDT-gzipped.csv", gzip.compress(csv().encode()), "binary content"),
    ("BTCUSDT-page.csv", b"<html><body>502 Bad Gateway</body></html>\n", "unrecognised columns"),
    ("BTCUSDT-json.csv", b'[{"t": 1, "o": 2}]\n', "unrecognised columns"),
    ("BTCUSDT-empty.parquet", b"", "empty file"),
]
READABLE_EXTRAS = [
    ("BTCUSDT-crlf-bom.csv", ("\ufeff" + csv().replace("\n", "\r\n")).encode("utf-8")),
    ("BTCUSDT-extra-columns.csv", (HEADER + ",note\n" + "\n".join(g + ",ok" for g in GOOD) + "\n").encode()),
]


def test_corpus_of_malformed_files(data_dir):
    incoming = data_dir / "incoming"
    incoming.mkdir(parents=True)
    originals = {}
    for name, text, _rule, _line in ROW_CASES:
        originals[f"BTCUSDT-{name}.csv"] = text.encode()
    for name, data, _rule in FILE_CASES + EXTRA_FILE_CASES:
        originals[name] = data
    for name, data in READABLE_EXTRAS:
        originals[name] = data
    assert len(originals) >= 30
    for name, data in originals.items():
        (incoming / name).write_bytes(data)

    assert main(["ingest"]) == 0

    quarantined = {p.name for p in (data_dir / "quarantine").iterdir() if not p.name.endswith(".reason")}
    processed = {p.name for p in (data_dir / "processed").iterdir()}
    assert not list(incoming.iterdir())  # every file was filed away
    assert quarantined | processed == set(originals)
    for name, _data, rule in FILE_CASES + EXTRA_FILE_CASES:
        assert name in quarantined, name
        reason = (data_dir / "quarantine" / f"{name}.reason").read_text()
        assert name in reason and rule in reason, (name, reason)
    for name in quarantined | processed:
        folder = "quarantine" if name in quarantined else "processed"
        assert (data_dir / folder / name).read_bytes() == originals[name], name  # original bytes kept

    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        rejected = con.execute("SELECT file, line, reason FROM candles_rejected").fetchall()
        hours = con.execute("SELECT count(*) FROM candles WHERE symbol = 'BTCUSDT'").fetchone()[0]
    by_file = {}
    for file, line, reason in rejected:
        by_file.setdefault(file, []).append((line, reason))
    for name, _text, rule, line in ROW_CASES:
        file = f"BTCUSDT-{name}.csv"
        assert any(rule in r and ln == line for ln, r in by_file.get(file, [])), (file, by_file.get(file))
    # the good rows of every file landed once (all files share the same three good hours, and two
    # row cases add valid hours: the duplicate-conflict case keeps its later row for 01:00)
    assert hours == 3
