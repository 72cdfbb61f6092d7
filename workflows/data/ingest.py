"""Landing files: find them, read them, land their rows, and file the originals away.

The original bytes of an input file are never deleted: a file that was read goes
to `processed/`, a file that cannot be read as a whole goes to `quarantine/`
with a `<name>.reason` file beside it. Both moves are atomic renames within the
data folder, and never overwrite an earlier file of the same name.

Files are landed only when complete. Writers copy a file in as `NAME.part` (or
`.partial`, `.tmp`, or a dot-name) and rename it to `NAME` when done: those names
are never read. A file whose size or modification time changes while it is read
is left in `incoming/` for the next pass (`FileChangedError`), and a file is moved
to `processed/` only if it is still the version that was read; a later, longer
version is read again (landing is idempotent).
"""

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import polars as pl

from workflows.data.sources.candles import CandleSourceError, ReadResult
from workflows.data.sources.files import FileChangedError, file_version, read_candle_file
from workflows.data.warehouse import CandleSpan, UpsertStats, ensure_schema, record_rejections, upsert_candles
from workflows.io import move_atomic, write_text_atomic
from workflows.settings import DataPaths

# A file whose close differs from a stored close of the same symbol at most JUMP_WINDOW_HOURS away by more
# than a factor MAX_PRICE_JUMP (either way) is refused whole: another pair's prices under this name, or a unit
# error. The largest daily move of BTC/USDT on Binance (2020-03-12) was a factor of about 1.6.
MAX_PRICE_JUMP = 2.0
JUMP_WINDOW_HOURS = 24


@dataclass
class IncomingScan:
    files: list[Path] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)


def scan_incoming(paths: DataPaths) -> IncomingScan:
    """Regular files in `incoming/`, oldest first. Symlinks and anything resolving
    outside the folder are refused (and reported), never followed."""
    scan = IncomingScan()
    if not paths.incoming.is_dir():
        return scan
    root = paths.incoming.resolve()
    entries = []
    for entry in paths.incoming.iterdir():
        if entry.name.startswith(".") or entry.name.endswith((".part", ".partial", ".tmp")):
            continue
        if entry.is_symlink():
            scan.refused.append((entry, "symbolic links are not followed"))
            continue
        if entry.resolve().parent != root:
            scan.refused.append((entry, "path resolves outside the incoming folder"))
            continue
        if entry.is_file():
            stat = entry.stat()
            entries.append((stat.st_mtime, entry.name, entry))
    scan.files = [e for _, _, e in sorted(entries)]
    return scan


MAX_FILES_PER_RUN = 20  # files one ingest run lands at most (the `incoming_files` sensor batches by it)
SETTLE_SECONDS = 2.0  # a file modified more recently than this is still being written: left for the next pass


@dataclass(frozen=True)
class IncomingBatch:
    """Files of one symbol that one ingest run lands, with the version (size:mtime) each was read at."""

    symbol: str
    files: list[tuple[Path, str]]

    @property
    def run_key(self) -> str:
        """One run per symbol and file versions: a changed file is a new run, the same one is not."""
        return f"{self.symbol}|" + "|".join(f"{p.name}:{v}" for p, v in self.files)


@dataclass
class IncomingPlan:
    """What a pass over `incoming/` found: the batches to land, the file versions read (the sensor's cursor),
    and what to tell the user as (level, message): "info", "warning" or "error"."""

    batches: list[IncomingBatch] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)
    messages: list[tuple[str, str]] = field(default_factory=list)

    @property
    def symbols(self) -> set[str]:
        return {b.symbol for b in self.batches}


def plan_incoming(
    paths: DataPaths, seen: dict[str, str], now: float, max_files: int = MAX_FILES_PER_RUN
) -> IncomingPlan:
    """Which files of `incoming/` to land, oldest first, in batches of at most `max_files` per symbol. A file
    whose version is in `seen` (read before), modified in the last `SETTLE_SECONDS` before `now` (epoch
    seconds) or changed while it was read waits for the next pass; one that cannot be read goes to quarantine
    with the reason, and the other files go on. Symlinks and paths outside the folder are refused."""
    scan = scan_incoming(paths)
    plan = IncomingPlan(messages=[("warning", f"refused {path.name}: {why}") for path, why in scan.refused])
    present = {p.name for p in scan.files}
    plan.seen = {name: v for name, v in seen.items() if name in present}  # forget files that were filed away
    by_symbol: dict[str, list[tuple[Path, str]]] = {}
    for path in scan.files:  # oldest first
        version = file_version(path.stat())
        if plan.seen.get(path.name) == version:
            continue
        if now - path.stat().st_mtime < SETTLE_SECONDS:
            plan.messages.append(("info", f"{path.name} is still being written; next tick"))
            continue
        symbols = _symbols_or_quarantine(path, paths, plan.messages)
        for symbol in symbols or []:
            by_symbol.setdefault(symbol, []).append((path, version))
        if symbols:
            plan.seen[path.name] = version
    for symbol, files in sorted(by_symbol.items()):
        plan.batches += [IncomingBatch(symbol, files[i : i + max_files]) for i in range(0, len(files), max_files)]
    if not plan.batches and scan.refused:
        plan.messages.append(("info", f"{len(scan.refused)} path(s) refused, nothing new"))
    return plan


def _symbols_or_quarantine(path: Path, paths: DataPaths, messages: list[tuple[str, str]]) -> list[str] | None:
    """The symbols of one incoming file; None when it must wait (it changed while read) or went to quarantine
    (unreadable, or every row rejected). Each file on its own: one that cannot be read never stops the others."""
    try:
        symbols = read_candle_file(path).symbols
    except FileChangedError as exc:
        messages.append(("info", f"{path.name}: {exc}; next tick"))
        return None
    except CandleSourceError as exc:
        try:
            move_to_quarantine(path, paths, str(exc))
            messages.append(("warning", f"quarantined {path.name}: {exc}"))
        except OSError as move_error:
            messages.append(("error", f"{path.name}: {exc}; could not quarantine it: {move_error}"))
        return None
    if not symbols:
        move_to_quarantine(path, paths, f"{path.name}: no valid rows: every row was rejected")
        return None
    return list(symbols)


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    if not target.exists():
        return target
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    return folder / f"{Path(name).stem}.{stamp}{Path(name).suffix}"


def move_to_processed(path: Path, paths: DataPaths) -> Path:
    paths.processed.mkdir(parents=True, exist_ok=True)
    return move_atomic(path, _free_name(paths.processed, path.name))


def move_to_quarantine(path: Path, paths: DataPaths, reason: str) -> Path:
    """Move the original bytes to quarantine/ and write the reason beside them."""
    paths.quarantine.mkdir(parents=True, exist_ok=True)
    target = _free_name(paths.quarantine, path.name)
    move_atomic(path, target)
    write_text_atomic(target.with_name(target.name + ".reason"), reason.rstrip() + "\n")
    return target


@dataclass
class LandingReport:
    """What landing one symbol's inputs did, for the asset's metadata."""

    symbol: str
    sources: list[str]
    stats: UpsertStats
    rejected: int
    reasons: Counter
    notes: list[str]

    def metadata(self) -> dict:
        return {
            "rows_added": self.stats.inserted,
            "rows_updated": self.stats.updated,
            "rows_unchanged": self.stats.unchanged,
            "rows_rejected": self.rejected,
            "sources": ", ".join(self.sources) or "none",
            "notes": "\n".join(self.notes) or "none",
        }


def land(con: duckdb.DuckDBPyConnection, symbol: str, results: list[ReadResult]) -> LandingReport:
    """Upsert one symbol's valid rows from every result and record its rejected rows."""
    inserted = updated = unchanged = rejected = 0
    firsts: list[datetime] = []
    reasons: Counter = Counter()
    notes: list[str] = []
    for result in results:
        part = result.for_symbol(symbol)
        stats = upsert_candles(con, part.candles, source=result.source)
        inserted, updated, unchanged = inserted + stats.inserted, updated + stats.updated, unchanged + stats.unchanged
        firsts += [stats.first_changed] if stats.first_changed else []
        record_rejections(con, result.source, part.rejected, symbol=symbol)
        rejected += part.rejected.height
        reasons.update(_reason_keys(part.rejected))
        notes.extend(f"{result.source}: {n}" for n in part.notes)
    stats = UpsertStats(inserted, updated, unchanged, min(firsts, default=None))
    return LandingReport(symbol, [r.source for r in results], stats, rejected, reasons, notes)


def _reason_keys(rejected: pl.DataFrame) -> list[str]:
    keys = []
    for reason in rejected["reason"].to_list():
        # "duplicate hour ...: line 123 was kept" -> group without the line number
        keys.append(reason.split(": line")[0].split(": identical")[0])
    return keys


@dataclass
class FileReads:
    """Each file read on its own: what was read, what cannot be (quarantine it), what is still being written."""

    results: list[tuple[Path, ReadResult]] = field(default_factory=list)
    failures: list[tuple[Path, CandleSourceError]] = field(default_factory=list)
    pending: list[tuple[Path, FileChangedError]] = field(default_factory=list)


def read_files(files: list[Path]) -> FileReads:
    reads = FileReads()
    for path in files:
        try:
            reads.results.append((path, read_candle_file(path)))
        except FileChangedError as exc:
            reads.pending.append((path, exc))
        except CandleSourceError as exc:
            reads.failures.append((path, exc))
    return reads


def unchanged_since_read(path: Path, result: ReadResult) -> bool:
    """The file is still the version `result` was read from (so moving it away loses nothing unread)."""
    try:
        return result.file_version is not None and file_version(path.stat()) == result.file_version
    except FileNotFoundError:
        return False


def check_input_file(path: str | Path, paths: DataPaths, *, in_incoming: bool) -> Path:
    """The rules for a file named in run config: a regular file, not a symbolic link, and, for a file the run
    will move (`in_incoming`), one directly inside the incoming folder. Raises ValueError saying which rule."""
    path = Path(path)
    if path.is_symlink():
        raise ValueError(f"{path}: symbolic links are not followed; copy the file itself")
    if not path.is_file():
        raise ValueError(f"{path}: not a regular file")
    if in_incoming and path.resolve().parent != paths.incoming.resolve():
        raise ValueError(
            f"{path}: files that a run moves to processed/ must lie directly in {paths.incoming}; copy it there"
        )
    return path


def missing_hours(span: CandleSpan) -> dict:
    """First and last stored hour and how many hours in between are missing, from `candle_span`."""
    if span.first is None or span.last is None:
        return {"first_hour": "none", "last_hour": "none", "hours": 0, "missing_hours": 0, "missing_ratio": 0.0}
    return {
        "first_hour": span.first.isoformat(),
        "last_hour": span.last.isoformat(),
        "hours": span.hours,
        "missing_hours": span.missing,
        "missing_ratio": round(span.missing / span.expected, 6),
    }


def price_jump(con: duckdb.DuckDBPyConnection, result: ReadResult) -> CandleSourceError | None:
    """The first (earliest) implausible jump between a file's candles and the stored candles of the same symbol (None:
    none): a close more than `MAX_PRICE_JUMP` times (or under 1 / `MAX_PRICE_JUMP` of) the stored close of the
    same hour or of the nearest stored hour at most `JUMP_WINDOW_HOURS` away. Checked before anything lands."""
    ensure_schema(con)
    window = timedelta(hours=JUMP_WINDOW_HOURS)
    for symbol in result.symbols:
        new = result.candles.filter(pl.col("symbol") == symbol).select("ts", "close").sort("ts")
        lo, hi = new["ts"].min(), new["ts"].max()
        assert isinstance(lo, datetime) and isinstance(hi, datetime)
        stored = con.execute(
            "SELECT ts, close FROM candles WHERE symbol = ? AND ts BETWEEN ? AND ? ORDER BY ts",
            [symbol, *(t.astimezone(timezone.utc).replace(tzinfo=None) - d for t, d in ((lo, window), (hi, -window)))],
        ).pl()
        if stored.is_empty():
            continue
        stored = stored.with_columns(pl.col("ts").dt.replace_time_zone("UTC").cast(new["ts"].dtype))
        pairs = [new.join(stored, on="ts", suffix="_stored").with_columns(stored_ts=pl.col("ts"))]
        outside = stored.join(new, on="ts", how="anti").select("ts", close_stored="close").sort("ts")
        for strategy in ("backward", "forward"):
            near = new.join_asof(
                outside.with_columns(stored_ts=pl.col("ts")), on="ts", strategy=strategy, tolerance=window
            )
            pairs.append(near.drop_nulls("close_stored").select("ts", "close", "close_stored", "stored_ts"))
        checked = pl.concat([p.select("ts", "close", "close_stored", "stored_ts") for p in pairs])
        jumps = checked.with_columns(factor=(pl.col("close") / pl.col("close_stored")).log().abs().exp()).filter(
            pl.col("factor") > MAX_PRICE_JUMP
        )
        if jumps.is_empty():
            continue
        worst = jumps.sort("ts", "stored_ts").row(0, named=True)  # the first such hour
        return CandleSourceError(
            result.source,
            "implausible price jump",
            f"{symbol} {worst['ts']:%Y-%m-%d %H:%M}: close {worst['close']:g} against the stored close "
            f"{worst['close_stored']:g} of {worst['stored_ts']:%Y-%m-%d %H:%M} UTC, a factor of "
            f"{worst['factor']:.2f} ({jumps.height} such hour(s)); the rule: a file's close may differ from a stored "
            f"close at most {JUMP_WINDOW_HOURS} hours away by a factor of at most {MAX_PRICE_JUMP:g} "
            f"(|log ratio| <= {math.log(MAX_PRICE_JUMP):.3f})",
            "check that the file holds this pair's hourly prices (not another pair's, nor another unit); if the "
            "stored candles are the wrong ones, take them out with `workflows remove-source`, then land the file",
        )
    return None
