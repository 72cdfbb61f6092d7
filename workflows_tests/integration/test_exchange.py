"""The Binance client against a local HTTP server on 127.0.0.1 that serves
responses in the exchange's documented kline format; never the internet."""

import json
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from workflows.data.sources.exchange import ExchangeClient, ExchangeError, exchange_source

HOUR_MS = 3_600_000
NOW = datetime(2024, 3, 1, 12, 30, tzinfo=timezone.utc)


def kline(open_ms: int) -> list:
    # [open time, open, high, low, close, volume, close time, quote volume, trades,
    #  taker buy base, taker buy quote, ignore] as the exchange sends them
    return [
        open_ms,
        "62000.10",
        "62500.00",
        "61800.00",
        "62300.50",
        "812.4",
        open_ms + HOUR_MS - 1,
        "50500000.1",
        41234,
        "400.1",
        "24900000.5",
        "0",
    ]


class FakeExchange:
    def __init__(self):
        self.script: list = []  # per-request overrides: ("status", code, headers) / ("body", bytes) / ("sleep", s)
        self.requests: list[dict] = []
        self.url = ""  # set once the server listens

    def handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
                fake.requests.append(query)
                action = fake.script.pop(0) if fake.script else None
                if action and action[0] == "sleep":
                    time.sleep(action[1])
                if action and action[0] == "status":
                    self.send_response(action[1])
                    for k, v in action[2].items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(b'{"code":-1003,"msg":"Too many requests"}')
                    return
                if action and action[0] == "body":
                    body = action[1]
                else:
                    start, end = int(query["startTime"]), int(query["endTime"])
                    limit = int(query.get("limit", 500))
                    opens = list(range(start, end + 1, HOUR_MS))[:limit]
                    body = json.dumps([kline(o) for o in opens]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

        return Handler


@pytest.fixture
def fake():
    exchange = FakeExchange()
    server = ThreadingHTTPServer(("127.0.0.1", 0), exchange.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    exchange.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield exchange
    server.shutdown()
    server.server_close()


def client(url, **kw):
    kw.setdefault("sleep", lambda s: None)
    return ExchangeClient(base_url=url, timeout_s=2.0, max_retries=2, backoff_s=0.01, **kw)


def test_paginates_and_drops_the_unclosed_candle(fake):
    start = NOW - timedelta(hours=2500)
    frame = client(fake.url, page_limit=1000).fetch_klines("BTC/USDT", start, now=NOW)
    # 2,500 hours back, at half past: the current hour has not closed yet
    assert frame.height == 2500
    assert frame["ts"].is_unique().all()
    assert frame["ts"].max() == datetime(2024, 3, 1, 11, tzinfo=timezone.utc)
    assert len(fake.requests) == 3
    assert fake.requests[0]["symbol"] == "BTCUSDT" and fake.requests[0]["interval"] == "1h"
    assert frame["close"][0] == 62300.5


def test_retries_http_429_honouring_retry_after(fake):
    waits = []
    fake.script = [("status", 429, {"Retry-After": "3"}), ("status", 503, {})]
    frame = client(fake.url, sleep=waits.append).fetch_klines("BTCUSDT", NOW - timedelta(hours=5), now=NOW)
    assert frame.height == 5
    assert waits[0] >= 3 and len(waits) == 2


def test_malformed_json_fails_clearly_after_retries(fake):
    fake.script = [("body", b"{not json")] * 3
    with pytest.raises(ExchangeError, match=r"gave up after 3 attempts.*malformed response"):
        client(fake.url).fetch_klines("BTCUSDT", NOW - timedelta(hours=5), now=NOW)
    assert len(fake.requests) == 3


def test_client_error_is_not_retried(fake):
    fake.script = [("status", 400, {})]
    with pytest.raises(ExchangeError, match="HTTP 400"):
        client(fake.url).fetch_klines("BTCUSDT", NOW - timedelta(hours=5), now=NOW)
    assert len(fake.requests) == 1


def test_slow_server_times_out_then_recovers(fake):
    fake.script = [("sleep", 1.5)]
    c = ExchangeClient(base_url=fake.url, timeout_s=0.5, max_retries=2, backoff_s=0.01, sleep=lambda s: None)
    frame = c.fetch_klines("BTCUSDT", NOW - timedelta(hours=3), now=NOW)
    assert frame.height == 3


def test_offline_gives_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ExchangeError, match=r"network error.*offline synthetic source"):
        client(f"http://127.0.0.1:{port}").fetch_klines("BTCUSDT", NOW - timedelta(hours=3), now=NOW)


def test_exchange_source_validates_rows(fake):
    bad = kline(int((NOW - timedelta(hours=2)).timestamp() * 1000) // HOUR_MS * HOUR_MS)
    bad[3] = "70000"  # low above high
    fake.script = [("body", json.dumps([bad]).encode())]
    result = exchange_source(client(fake.url), "BTCUSDT", NOW - timedelta(hours=2), now=NOW)
    assert result.candles.is_empty()
    assert "high below low" in result.rejected["reason"][0]


def test_exchange_down_writes_nothing(instance, data_dir):
    """The candles asset with the exchange unreachable fails clearly and writes no row."""
    import dagster as dg
    import duckdb

    from workflows.defs.assets_data import candles
    from workflows.defs.resources import WarehouseResource

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    instance.add_dynamic_partitions("symbols", ["BTCUSDT"])
    result = dg.materialize(
        [candles],
        partition_key="BTCUSDT",
        instance=instance,
        raise_on_error=False,
        resources={"warehouse": WarehouseResource(data_dir=str(data_dir))},
        run_config={
            "ops": {
                "candles": {"config": {"source": "exchange", "exchange_url": f"http://127.0.0.1:{port}", "days": 1}}
            }
        },
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "gave up after" in str(failure.step_failure_data.error)
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        assert con.execute("SELECT count(*) FROM candles").fetchone()[0] == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://api.binance.com",  # the right host without TLS
        "https://evil.example.com",
        "file:///etc/passwd",
        "ftp://127.0.0.1",
        "https://api.binance.com.evil.example",
    ],
)
def test_exchange_url_is_https_on_the_exchanges_hosts_or_a_loopback_server(url):
    with pytest.raises(ValueError, match="refused: expected https on one of"):
        ExchangeClient(base_url=url)


def test_the_exchanges_hosts_and_a_loopback_server_are_accepted():
    for url in (
        "https://api.binance.com",
        "https://data-api.binance.vision",
        "http://127.0.0.1:8080",
        "http://[::1]:9",
    ):
        assert ExchangeClient(base_url=url).base_url == url


def test_a_retry_after_beyond_the_cap_is_not_waited_for(fake):
    waits = []
    fake.script = [("status", 429, {"Retry-After": "86400"})]
    with pytest.raises(ExchangeError, match=r"gave up after 1 attempts.*Retry-After 86400 s \(over the 60 s cap\)"):
        client(fake.url, sleep=waits.append).fetch_klines("BTCUSDT", NOW - timedelta(hours=5), now=NOW)
    assert waits == []


def test_a_reader_in_another_process_succeeds_while_the_exchange_is_slow(fake, instance, data_dir):
    """The candles asset fetches with no DuckDB connection open: while the exchange takes 8 s to answer,
    another process opens the warehouse and reads it (before: "Conflicting lock is held")."""
    import subprocess
    import sys

    import dagster as dg
    import duckdb

    from workflows.defs.assets_data import candles
    from workflows.defs.resources import WarehouseResource

    db = data_dir / "warehouse.duckdb"
    data_dir.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE probe AS SELECT 1 AS one")
    slow = 8.0  # under the client's 10 s timeout
    fake.script = [("sleep", slow)]
    read: dict = {}

    def reader():
        deadline = time.monotonic() + 60
        while not fake.requests and time.monotonic() < deadline:  # the asset is now waiting on the exchange
            time.sleep(0.05)
        asked = time.monotonic()
        code = f"import duckdb; print(duckdb.connect({str(db)!r}, read_only=True).execute('FROM probe').fetchone())"
        read["done"] = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        read["while_waiting"] = time.monotonic() - asked < slow  # the exchange had not answered yet

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    instance.add_dynamic_partitions("symbols", ["BTCUSDT"])
    result = dg.materialize(
        [candles],
        partition_key="BTCUSDT",
        instance=instance,
        raise_on_error=False,
        resources={"warehouse": WarehouseResource(data_dir=str(data_dir))},
        run_config={"ops": {"candles": {"config": {"source": "exchange", "exchange_url": fake.url, "days": 1}}}},
    )
    thread.join(timeout=60)
    assert read["done"].returncode == 0, read["done"].stderr[-1500:]
    assert read["done"].stdout.strip() == "(1,)" and read["while_waiting"]
    assert result.success  # and the fetch itself completes after the delay
