"""Binance public klines endpoint (`GET /api/v3/klines`, no key needed).

Paginated (1000 candles a request), with a timeout per request, retries with
exponential backoff on network errors, HTTP 429/418/5xx (honouring
`Retry-After`) and malformed JSON, then a clear `ExchangeError`. Candles that
have not closed yet are left out. Nothing is returned unless every page
arrived, so a failure never yields a partial history.
"""

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import polars as pl

from workflows.data.sources.candles import CANDLE_SCHEMA, ReadResult, empty_candles, from_candles, normalize_symbol

DEFAULT_BASE_URL = "https://api.binance.com"
# Where the client may send requests: https on the exchange's own API hosts, or a local test server
# (http or https on a loopback address), never another host or scheme.
EXCHANGE_HOSTS = frozenset(
    {
        "api.binance.com",
        "api1.binance.com",
        "api2.binance.com",
        "api3.binance.com",
        "api4.binance.com",
        "api-gcp.binance.com",
        "data-api.binance.vision",
        "api.binance.us",
    }
)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_RETRY_AFTER_S = 60.0  # a server's Retry-After is honoured up to this; longer waits count as a failed attempt
HOUR_MS = 3_600_000
RETRY_STATUS = {418, 429, 500, 502, 503, 504}


def check_base_url(url: str) -> str:
    """`url` if it is https on one of the exchange's hosts, or a loopback test server; else ValueError."""
    parsed = urllib.parse.urlparse(url)
    host = (parsed.hostname or "").lower()
    if parsed.scheme == "https" and host in EXCHANGE_HOSTS:
        return url
    if parsed.scheme in ("http", "https") and host in LOOPBACK_HOSTS:
        return url
    raise ValueError(
        f"exchange URL {url!r} refused: expected https on one of {', '.join(sorted(EXCHANGE_HOSTS))}, or "
        "http(s) on a loopback address (127.0.0.1, localhost, ::1) for a local test server"
    )


def _error_message(exc: urllib.error.HTTPError) -> str:
    """Binance's own reason (`{"code": -1121, "msg": "Invalid symbol."}`), when the body holds one."""
    try:
        body = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
        return ""
    return f": {body['msg']}" if isinstance(body, dict) and body.get("msg") else ""


class ExchangeError(RuntimeError):
    """The exchange could not be reached or answered nonsense; says what and how often it tried."""


@dataclass(frozen=True)
class ExchangeClient:
    base_url: str = DEFAULT_BASE_URL
    timeout_s: float = 10.0
    max_retries: int = 4
    backoff_s: float = 0.5
    page_limit: int = 1000
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self):
        check_base_url(self.base_url)

    def _get(self, params: dict) -> list:
        url = f"{self.base_url.rstrip('/')}/api/v3/klines?{urllib.parse.urlencode(params)}"
        last, attempts = "no attempt made", 0
        for attempt in range(self.max_retries + 1):
            attempts = attempt + 1
            delay = self.backoff_s * (2**attempt)
            try:
                with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                    body = response.read()
                payload = json.loads(body)
                if not isinstance(payload, list):
                    raise ValueError(f"expected a JSON list of klines, got {type(payload).__name__}")
                return payload
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code} {exc.reason}"
                if exc.code not in RETRY_STATUS:
                    raise ExchangeError(f"{url}: {last} (not retried){_error_message(exc)}") from None
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
                if retry_after and retry_after.strip().isdigit():
                    if float(retry_after) > MAX_RETRY_AFTER_S:
                        last += f" with Retry-After {retry_after.strip()} s (over the {MAX_RETRY_AFTER_S:g} s cap)"
                        break
                    delay = max(delay, float(retry_after))
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                last = f"network error: {getattr(exc, 'reason', exc)}"
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                last = f"malformed response: {exc}"
            if attempt < self.max_retries:
                self.sleep(delay)
        raise ExchangeError(
            f"{url}: gave up after {attempts} attempts; last error: {last}. "
            "Check the network, or use the offline synthetic source or candle files."
        )

    def fetch_klines(
        self, symbol: str, start: datetime, end: datetime | None = None, *, now: datetime | None = None
    ) -> pl.DataFrame:
        """Closed hourly candles with open time in [start, end), as a candle frame."""
        now = now or datetime.now(timezone.utc)
        end = min(end or now, now)
        pair = normalize_symbol(symbol)
        start_ms = int(start.timestamp() * 1000) // HOUR_MS * HOUR_MS
        end_ms = int(end.timestamp() * 1000)
        rows: list[list] = []
        cursor = start_ms
        while cursor < end_ms:
            page = self._get(
                {"symbol": pair, "interval": "1h", "startTime": cursor, "endTime": end_ms - 1, "limit": self.page_limit}
            )
            if not page:
                break
            for i, kline in enumerate(page):
                if not isinstance(kline, list) or len(kline) < 7:
                    raise ExchangeError(f"malformed kline #{i} for {pair}: {str(kline)[:80]}")
            rows.extend(page)
            last_open = int(page[-1][0])
            if last_open + HOUR_MS <= cursor:  # no progress: refuse to loop forever
                raise ExchangeError(f"exchange returned a page that does not advance past {cursor} for {pair}")
            cursor = last_open + HOUR_MS
            if len(page) < self.page_limit:
                break
        return klines_to_frame(pair, rows, now=now)


def klines_to_frame(symbol: str, klines: list[list], *, now: datetime) -> pl.DataFrame:
    """Binance kline arrays to a candle frame, keeping only closed candles."""
    if not klines:
        return empty_candles()
    now_ms = int(now.timestamp() * 1000)
    closed = [k for k in klines if int(k[6]) < now_ms]
    frame = pl.DataFrame(
        {
            "symbol": [symbol] * len(closed),
            "ts": [int(k[0]) for k in closed],
            "open": [k[1] for k in closed],
            "high": [k[2] for k in closed],
            "low": [k[3] for k in closed],
            "close": [k[4] for k in closed],
            "volume": [k[5] for k in closed],
        },
        schema={
            "symbol": pl.String,
            "ts": pl.Int64,
            **dict.fromkeys(("open", "high", "low", "close", "volume"), pl.String),
        },
    )
    return frame.with_columns(
        pl.col("ts").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"),
        *[pl.col(c).cast(pl.Float64, strict=False) for c in ("open", "high", "low", "close", "volume")],
    ).cast(CANDLE_SCHEMA)


def exchange_source(
    client: ExchangeClient, symbol: str, start: datetime, end: datetime | None = None, *, now: datetime | None = None
) -> ReadResult:
    now = now or datetime.now(timezone.utc)
    candles = client.fetch_klines(symbol, start, end, now=now)
    result = from_candles(f"binance:{normalize_symbol(symbol)}", candles, "binance-api", now=now)
    result.notes.append(f"fetched {candles.height} closed hourly candles from {client.base_url}")
    return result


def default_start(last_ts: datetime | None, days: int) -> datetime:
    """Resume after the last stored hour, or go back `days` when nothing is stored yet."""
    if last_ts is not None:
        return last_ts + timedelta(hours=1)
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(days=days)
