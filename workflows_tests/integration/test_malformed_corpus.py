"""A corpus of malformed candle files through `workflows ingest`: each gets a clear
message naming the file and the rule, good rows land, and the original bytes are kept
(processed/ for files that were read, quarantine/ with a .reason for the rest)."""

import gzip
import re

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


def test_issue_21_corpus_lands_every_good_row_and_accounts_for_every_bad_one(data_dir, monkeypatch):
    """Unbalanced quote, oversized field, nested Parquet, daily candles, pre-1970 / zero times and absurd prices,
    a file still being written and a `.part` file beside good ones: every good row lands, every bad row or file is
    rejected or quarantined with its reason, none blocks another, and rows in = landed + rejected per file."""
    import polars as pl

    from workflows.data.sources import files
    from workflows_tests.unit.test_malformed_inputs import hourly_lines

    incoming = data_dir / "incoming"
    incoming.mkdir(parents=True)

    def write(name, rows, header=HEADER):
        (incoming / name).write_text("\n".join([header, *rows]) + "\n")
        return rows

    quote = hourly_lines(100, start_hour=0)
    quote[2] = quote[2].replace(",100,", ',"100,', 1)
    huge = hourly_lines(50, start_hour=100)
    huge[10] += "," + "7" * 300_000
    # contiguous hours across the files (a gap would trip the blocking missing-hour check, not the point here)
    absurd = [
        *hourly_lines(20, start_hour=150),
        "0,100,101,99,100.5,10",
        "-315619200,100,101,99,100.5,10",
        f"{1704067200 + 3600 * 170},1e300,1e300,1e300,1e300,10",
    ]
    read_files = {
        "BTCUSDT-quote.csv": (write("BTCUSDT-quote.csv", quote), 1, "malformed quoting"),
        "BTCUSDT-huge.csv": (write("BTCUSDT-huge.csv", huge), 1, "line longer than"),
        "BTCUSDT-absurd.csv": (write("BTCUSDT-absurd.csv", absurd), 3, "time before 2009-01-03"),
        "BTCUSDT-good.csv": (write("BTCUSDT-good.csv", hourly_lines(30, start_hour=170)), 0, ""),
    }
    write(
        "BTCUSDT-1d.csv",
        [f"2024-02-{d:02d},100,101,99,100.5,10" for d in range(1, 15)],
        "date,open,high,low,close,volume",
    )
    pl.DataFrame(
        {"timestamp": [1704067200], "open": [[1.0]], "high": [1.0], "low": [1.0], "close": [1.0]}
    ).write_parquet(incoming / "BTCUSDT-nested.parquet")
    write("BTCUSDT-growing.csv", hourly_lines(10, start_hour=300))
    write("BTCUSDT-later.csv.part", hourly_lines(10, start_hour=400))

    real_build = files._build

    def a_writer_is_still_at_it(plan, rows, path):
        if path.name == "BTCUSDT-growing.csv":
            with open(path, "a") as handle:
                handle.write(hourly_lines(1, start_hour=310)[0] + "\n")
        return real_build(plan, rows, path)

    monkeypatch.setattr(files, "_build", a_writer_is_still_at_it)
    assert main(["ingest"]) == 0

    quarantine = data_dir / "quarantine"
    assert "not hourly" in (quarantine / "BTCUSDT-1d.csv.reason").read_text()
    assert "nested columns" in (quarantine / "BTCUSDT-nested.parquet.reason").read_text()
    assert sorted(p.name for p in incoming.iterdir()) == ["BTCUSDT-growing.csv", "BTCUSDT-later.csv.part"]
    assert sorted(p.name for p in (data_dir / "processed").iterdir()) == sorted(read_files)
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        landed = dict(con.execute("SELECT source, count(*) FROM candles GROUP BY 1").fetchall())
        rejected = con.execute("SELECT file, reason FROM candles_rejected").fetchall()
    for name, (rows, bad, rule) in read_files.items():
        reasons = [r for f, r in rejected if f == name]
        assert len(reasons) == bad and all(rule in r or "implausible price" in r for r in reasons), (name, reasons)
        assert landed.get(name, 0) + len(reasons) == len(rows), name  # rows in = landed + rejected
    assert set(landed) == set(read_files)  # nothing from the refused, pending or .part files


def test_hostile_files_through_ingest_say_what_they_are(data_dir, capsys):
    """What the user sees: a 30-minute file and another pair's prices are quarantined whole with the rule and
    its threshold, nothing of theirs lands, and a file that landed with rejected rows is not reported "ok"."""
    from workflows_tests.unit.test_hostile_files import NOW, _binance_klines

    incoming = data_dir / "incoming"
    incoming.mkdir(parents=True)
    good = _binance_klines(incoming / "BTCUSDT-1h-2024-03.csv", 48, minutes=60)
    stray = good.read_text().splitlines()[10].split(",")
    stray[0] = str(int(stray[0]) + 1_800_000)  # one half-hour row: rejected, the rest lands
    good.write_text(good.read_text() + ",".join(stray) + "\n")
    assert NOW.year == 2025 and main(["ingest"]) == 0
    out = capsys.readouterr()
    assert "BTCUSDT: run" in out.out and "landed, 1 row(s) REJECTED (1 file(s))" in out.out
    assert not re.search(r"BTCUSDT: run \S+ ok", out.out)

    eth = _binance_klines(data_dir / "eth.csv", 72, minutes=60, price=3_000.0)
    (incoming / "BTCUSDT-1h-2024-03-03.csv").write_text("\n".join(eth.read_text().splitlines()[48:]) + "\n")
    _binance_klines(incoming / "BTCUSDT-30m-2024-03.csv", 96, minutes=30)
    assert main(["ingest"]) == 0
    err = capsys.readouterr().err
    quarantine = data_dir / "quarantine"
    jump = (quarantine / "BTCUSDT-1h-2024-03-03.csv.reason").read_text()
    assert "implausible price jump: BTCUSDT 2024-03-03 00:00" in jump and "factor of at most 2" in jump
    assert "sub-hourly candles" in (quarantine / "BTCUSDT-30m-2024-03.csv.reason").read_text()
    assert "quarantined BTCUSDT-1h-2024-03-03.csv: " in err and "quarantined BTCUSDT-30m-2024-03.csv: " in err
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        assert con.execute("SELECT count(*), max(close) > 50000 FROM candles").fetchone() == (48, True)
