"""The data folder's symbols: which are landed, what a symbol name is, which symbol a command means."""

import sys
from pathlib import Path

from workflows.settings import DataPaths


def warehouse(paths: DataPaths):
    """A connection to the warehouse as the assets open it (`WarehouseResource.connect`: retried with backoff
    while a sensor or automation run holds the file's lock, closed on exit)."""
    from workflows.defs.resources import WarehouseResource

    return WarehouseResource(data_dir=str(paths.root)).connect()


def landed_symbols(paths: DataPaths) -> dict[str, int]:
    """Symbol -> candle count in the warehouse (empty when there is none yet)."""

    from workflows.data.warehouse import table_exists

    if not paths.warehouse.exists():
        return {}
    with warehouse(paths) as con:
        if not table_exists(con, "candles"):
            return {}
        return dict(con.execute("SELECT symbol, count(*) FROM candles GROUP BY symbol ORDER BY 1").fetchall())


def parse_symbol(raw: str) -> str:
    """A trading pair (`BTCUSDT`, `btc/usdt`), or SystemExit(2) with what was expected."""
    from workflows.data.sources.candles import QUOTE_CURRENCIES, normalize_symbol, symbol_from_filename

    try:
        symbol = normalize_symbol(raw)
    except ValueError:
        symbol = ""
    if not symbol or symbol_from_filename(symbol) != symbol:
        print(
            f"unknown symbol {raw!r}: expected a trading pair such as BTCUSDT or ETH/USDT (a base and one of the "
            f"quote currencies {', '.join(QUOTE_CURRENCIES)})",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return symbol


def only_landed(paths: DataPaths) -> str | None:
    """The one landed symbol when there is exactly one; else say what to do and return None."""
    landed = landed_symbols(paths)
    if len(landed) == 1:
        return next(iter(landed))
    if not landed:
        no_candles("", paths, landed)
    else:
        print(f"{len(landed)} symbols are landed ({', '.join(landed)}): name one with --symbol", file=sys.stderr)
    return None


def no_candles(symbol: str, paths: DataPaths, landed: dict[str, int]) -> int:
    have = ", ".join(f"{s} ({n:,} hours)" for s, n in landed.items()) or "none"
    name = symbol or "BTCUSDT"
    print(
        f"no candles for {symbol or 'any symbol'} in {paths.warehouse} (landed symbols: {have}). Land them first "
        "with one of:\n"
        f"  workflows run path/to/{name}-candles.csv      (a file; or `make run FILE=...`)\n"
        f"  workflows fetch {name} --days 365             (from the exchange, online)\n"
        f"  copy files into {paths.incoming} and run `make ingest`",
        file=sys.stderr,
    )
    return 2


def file_symbol(args) -> tuple[Path, str] | None:
    """The candle file of `args.file` and its one symbol (`--symbol`, else the file's own); None, with the
    reason printed, when the file is missing or holds several symbols."""
    from workflows.data.sources.files import read_candle_file

    file = Path(args.file).expanduser().resolve()
    if not file.is_file():
        print(f"no such file: {file}", file=sys.stderr)
        return None
    symbols = [parse_symbol(args.symbol)] if args.symbol else read_candle_file(file).symbols
    if len(symbols) != 1:
        print(
            f"{file.name} holds {len(symbols)} symbols ({', '.join(symbols) or 'none'}): name one with --symbol",
            file=sys.stderr,
        )
        return None
    return file, symbols[0]


def sources_of(paths: DataPaths, symbol: str) -> set[str]:

    from workflows.data.warehouse import candle_sources

    with warehouse(paths) as con:
        return {s.split(":")[0] for s in candle_sources(con, symbol)}
