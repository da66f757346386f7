"""The edge: what a caller without a key can make the server hold, slow and oversized heads and bodies,
the key cache's memory and freshness, /admin/logs limits, and a database that cannot be written.

Every test talks to a real gateway over real sockets (raw ones where an HTTP client would refuse to
send what an attacker sends)."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sdk_clients import PROTOCOL_ROWS
from servers import ADMIN_TOKEN, Admin, Server, start_gateway

CHAT = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'

# (path, key header) per surface, and how its error JSON is recognised
SURFACES = {row.surface: (row.chat_path.format(model=row.model), row.key_header) for row in PROTOCOL_ROWS.values()}
# the error shape each protocol answers in (the Responses API's HTTP errors are in OpenAI's envelope)
ERROR_SHAPES = {"openai_chat": "openai", "anthropic_messages": "anthropic", "gemini": "gemini",
                "openai_responses": "openai"}
SHAPE = {row.surface: ERROR_SHAPES[protocol] for protocol, row in PROTOCOL_ROWS.items()}


def shape_of(payload: dict) -> str:
    if payload.get("type") == "error":
        return "anthropic"
    error = payload["error"]
    return "gemini" if "status" in error else "openai"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def connect(server: Server, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes, bool]:
    """(status, headers, body, closed after it) of one response read from `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed without a response: {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    try:
        closed = sock.recv(1) == b""
    except ConnectionResetError:
        closed = True
    except TimeoutError:
        closed = False
    return status, headers, body, closed


def post_head(path: str, headers: list[str], length: int) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: gateway", "Content-Type: application/json",
             f"Content-Length: {length}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.fixture(scope="module")
def quick_gateway(sim: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The main config's gateway with 1 s head and body deadlines."""
    from conftest import main_config

    saved = {k: os.environ.get(k) for k in ("POLYRELAY_HEADER_TIMEOUT", "POLYRELAY_BODY_TIMEOUT")}
    os.environ.update(POLYRELAY_HEADER_TIMEOUT="1", POLYRELAY_BODY_TIMEOUT="1")
    try:
        server = start_gateway(main_config(sim.url), tmp_path_factory.mktemp("quick"))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    yield server
    server.stop()


# ---- authentication before the body ----------------------------------------------------------

@pytest.mark.parametrize("surface", sorted(SURFACES))
@pytest.mark.parametrize("key", [None, "sk-not-a-key"])
def test_caller_without_a_valid_key_is_refused_before_sending_its_body(gateway: Server, surface: str,
                                                                        key: str | None) -> None:
    """Headers announcing a 50 MB body and no body at all: the 401 comes at once, in the surface's
    shape, and the connection is closed (the body is never read)."""
    path, key_header = SURFACES[surface]
    with connect(gateway) as sock:
        sock.sendall(post_head(path, [key_header.format(key=key)] if key else [], 50 * 1024 * 1024))
        status, headers, body, closed = read_response(sock)
    import json
    assert status == 401 and shape_of(json.loads(body)) == SHAPE[surface]
    assert headers.get("connection") == "close" and closed


def test_bogus_keys_with_big_bodies_hold_no_memory(gateway: Server) -> None:
    """12 concurrent 16 MB bodies with a bogus key: all 401, and the gateway's RSS does not grow by
    the bodies (it grew by ~1.3 GB for 20 x 64 MB before bodies were read after authentication)."""
    assert gateway.proc is not None
    base = rss_mb(gateway.proc.pid)
    peak = base
    statuses: list[int] = []
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mb(gateway.proc.pid))  # type: ignore[union-attr]
            time.sleep(0.02)

    def send(i: int) -> None:
        r = httpx.post(gateway.url + "/v1/chat/completions", content=b" " * (16 * 1024 * 1024),
                       headers={"Authorization": f"Bearer sk-bogus-{i}", "Content-Type": "application/json"},
                       timeout=30)
        statuses.append(r.status_code)

    sampler = threading.Thread(target=sample)
    sampler.start()
    senders = [threading.Thread(target=send, args=(i,)) for i in range(12)]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    done.set()
    sampler.join()
    assert statuses == [401] * 12
    assert peak - base < 40, f"RSS {base:.0f} -> {peak:.0f} MB"


def test_body_caps_are_per_route(gateway: Server) -> None:
    """The admin API takes 64 KB; a declared length over a route's cap is 413 before any byte."""
    r = httpx.post(gateway.url + "/admin/keys", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                   content=b'{"name": "' + b"n" * (100 * 1024) + b'"}')
    assert r.status_code == 413 and "64 KB" in r.json()["error"]["message"]
    with connect(gateway) as sock:   # a 65 MB declared body, none sent: answered at once
        sock.sendall(post_head("/v1/messages", ["x-api-key: sk-alice-0001"], 65 * 1024 * 1024))
        status, _headers, body, closed = read_response(sock)
    assert status == 413 and b"request_too_large" in body and closed


@pytest.mark.slow
def test_body_that_does_not_arrive_in_time_is_408_in_the_callers_shape(quick_gateway: Server) -> None:
    import json
    for surface, (path, key_header) in SURFACES.items():
        with connect(quick_gateway) as sock:
            sock.sendall(post_head(path, [key_header.format(key="sk-alice-0001")], 1000) + b'{"model"')
            started = time.monotonic()
            status, _headers, body, closed = read_response(sock)
        assert status == 408 and shape_of(json.loads(body)) == SHAPE[surface] and closed
        assert 0.9 < time.monotonic() - started < 3


@pytest.mark.slow
def test_a_whole_request_in_one_read_is_served_normally(gateway: Server) -> None:
    """Headers and a 300 KB body in one write (more than the 64 KB head allowance in one read)."""
    padded = CHAT[:-1] + b',"metadata":{"pad":"' + b"u" * (300 * 1024) + b'"}}'
    with connect(gateway, timeout=15) as sock:
        sock.sendall(post_head("/v1/chat/completions", ["Authorization: Bearer sk-alice-0001"], len(padded)) + padded)
        status, _, body, _ = read_response(sock)
    assert status == 200, body[:300]


# ---- the request head --------------------------------------------------------------------------

@pytest.mark.slow
def test_head_over_64kb_is_431_and_long_url_414_and_just_under_passes(gateway: Server) -> None:
    import json
    with connect(gateway) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * (60 * 1024) + b"\r\n\r\n")
        assert read_response(sock)[0] == 200
    with connect(gateway) as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * (70 * 1024) + b"\r\n\r\n")
        status, _, body, closed = read_response(sock)
    assert status == 431 and shape_of(json.loads(body)) == "anthropic" and closed
    with connect(gateway) as sock:   # a client still sending when refused reads the answer all the same
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * (70 * 1024))
        sock.sendall(b"p" * (4 * 1024 * 1024))
        assert read_response(sock)[0] == 431
    with connect(gateway) as sock:
        sock.sendall(b"GET /v1/models?q=" + b"q" * (70 * 1024) + b" HTTP/1.1\r\n\r\n")
        status, _, body, closed = read_response(sock)
    assert status == 414 and closed


def test_a_100mb_header_is_refused_without_stalling_the_loop(gateway: Server) -> None:
    """httptools grows a header by concatenation: a 100 MB one blocked the loop for seconds (worst
    /health latency 3.0 s here, and a 200 after 11 s). Now the server answers 431 after 64 KB and
    drops the rest unparsed; /health stays fast meanwhile."""
    reply: list[int] = []
    done = threading.Event()

    def attack() -> None:
        with connect(gateway, timeout=30) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
            chunk = b"a" * (1 << 20)
            try:
                for _ in range(100):
                    sock.sendall(chunk)
                sock.sendall(b"\r\n\r\n")
            except OSError:
                pass
            reply.append(read_response(sock)[0])
        done.set()

    attacker = threading.Thread(target=attack)
    attacker.start()
    worst = 0.0
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        while not done.is_set():
            started = time.monotonic()
            assert client.get("/health").status_code == 200
            worst = max(worst, time.monotonic() - started)
            time.sleep(0.01)
    attacker.join()
    assert reply == [431]
    assert worst < 0.5, f"/health took {worst:.2f} s"


@pytest.mark.slow
def test_slow_and_silent_heads_are_closed_after_the_deadline(quick_gateway: Server) -> None:
    """Slowloris: 150 connections trickling header lines, 100 stopping half-way through their headers,
    50 saying nothing: all closed by the 1 s head deadline (they stayed open forever before); the
    half-way ones read a 408 (the tricklers write into a closed socket and see a reset instead)."""
    async def run() -> tuple[int, int, int]:
        conns = []
        for i in range(300):
            reader, writer = await asyncio.open_connection("127.0.0.1", quick_gateway.port)
            if i < 250:
                writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
            conns.append((reader, writer))
        for _ in range(10):   # 2.5 s of trickling
            for _reader, writer in conns[:150]:
                if not writer.is_closing():
                    writer.write(b"X-Slow: 1\r\n")
            await asyncio.sleep(0.25)
        closed = answered = silent = 0
        for i, (reader, writer) in enumerate(conns):
            try:
                data = await asyncio.wait_for(reader.read(), 1.0)
                closed += 1
                answered += 150 <= i < 250 and data.startswith(b"HTTP/1.1 408")
                silent += i >= 250 and data == b""
            except ConnectionError:
                closed += 1
            except TimeoutError:
                pass   # still open
            writer.close()
        return closed, answered, silent

    assert asyncio.run(run()) == (300, 100, 50)


def test_keep_alive_connection_serves_several_requests(gateway: Server) -> None:
    """The head counters and timers reset between requests on one connection."""
    with httpx.Client(base_url=gateway.url, headers={"Authorization": "Bearer sk-alice-0001",
                                                      "X-Pad": "p" * 50_000}) as client:
        for _ in range(5):
            assert client.post("/v1/chat/completions", content=CHAT).status_code == 200


@pytest.mark.slow
def test_key_disabled_through_one_worker_stops_in_every_worker_within_1s(sim: Server, tmp_path: Path) -> None:
    """`serve --workers 2`: the admin call lands on one worker; the other serves the key from its
    cache for at most KEY_CACHE_TTL (1 s) after the commit (it was 5 s)."""
    from conftest import main_config

    gateway = start_gateway(main_config(sim.url), tmp_path, extra_args=["--workers", "2"])
    try:
        admin = Admin(gateway.url)
        key = admin.create_key("two-workers")

        def status() -> int:   # a new connection each time: either worker may accept it
            with httpx.Client(base_url=gateway.url) as c:
                return c.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code

        assert [status() for _ in range(30)] == [200] * 30   # both workers hold it in cache
        r = admin.http.post("/admin/keys/two-workers/disable")
        assert r.status_code == 200
        disabled = time.monotonic()
        late = []
        while time.monotonic() - disabled < 2.0:
            started = time.monotonic() - disabled
            code = status()
            if started > 1.05:
                late.append(code)
        assert len(late) >= 10 and set(late) == {401}, late
    finally:
        gateway.stop()


# ---- admin -------------------------------------------------------------------------------------

@pytest.mark.parametrize("limit", ["-1", "abc", "1.5", "", " 3", "٣"])
def test_admin_logs_limit_must_be_a_whole_number(admin: Admin, limit: str) -> None:
    r = admin.http.get("/admin/logs", params={"limit": limit})
    if limit == "":   # no value: the default
        assert r.status_code == 200
        return
    assert r.status_code == 400 and r.json()["error"]["param"] == "limit"


def test_admin_logs_limit_is_clamped_to_1000(admin: Admin, gateway: Server) -> None:
    with httpx.Client(base_url=gateway.url, headers={"Authorization": "Bearer sk-alice-0001"}) as client:
        for _ in range(3):
            client.post("/v1/chat/completions", content=CHAT)
    assert len(admin.http.get("/admin/logs", params={"limit": "2"}).json()["data"]) == 2
    for big in ("1001", "99999999999999999999999"):
        r = admin.http.get("/admin/logs", params={"limit": big})
        assert r.status_code == 200 and len(r.json()["data"]) <= 1000


# ---- the database ------------------------------------------------------------------------------

def _keyless_config(sim_url: str) -> str:
    """No keys in the config: starting changes nothing in the database (keys come from the admin API)."""
    return f"""
channels:
  - {{name: oa, type: openai, base_url: "{sim_url}/v1", api_keys: [sk-up], models: [gpt-4o-mini]}}
  - {{name: an, type: anthropic, base_url: "{sim_url}", api_keys: [sk-up], models: [claude-sim-sonnet]}}
  - {{name: ge, type: gemini, base_url: "{sim_url}", api_keys: [sk-up], models: [gemini-2.5-flash]}}
  - {{name: re, type: openai, api: responses, base_url: "{sim_url}/v1", api_keys: [sk-up], models: [gpt-resp-mini]}}
prices:
  gpt-4o-mini: {{input: 0.15, output: 0.60}}
  claude-sim-sonnet: {{input: 3.0, output: 15.0}}
  gemini-2.5-flash: {{input: 0.30, output: 2.50}}
  gpt-resp-mini: {{input: 1.25, output: 10.0}}
"""


def test_read_only_database_is_503_in_the_callers_shape(sim: Server, tmp_path: Path) -> None:
    """A key made on a writable database; the gateway restarted on the same file opened read-only
    by SQLite (`mode=ro`; chmod does not stop root): reserving quota cannot be written, and each
    surface gets a 503 in its own shape (it was `500 internal gateway error`)."""
    import json

    db = tmp_path / "ro.db"
    writable = start_gateway(_keyless_config(sim.url), tmp_path, database_url=f"sqlite:///{db}")
    try:
        key = Admin(writable.url).create_key("ro-key", quota=5.0)
    finally:
        writable.stop()
    read_only = start_gateway(_keyless_config(sim.url), tmp_path,
                              database_url=f"sqlite:///file:{db}?mode=ro&uri=true")
    try:
        bodies = {"openai": CHAT,
                  "anthropic": b'{"model":"claude-sim-sonnet","max_tokens":10,'
                               b'"messages":[{"role":"user","content":"hi"}]}',
                  "gemini": b'{"contents":[{"parts":[{"text":"hi"}]}]}',
                  "responses": b'{"model":"gpt-resp-mini","input":"hi"}'}
        for surface, (path, key_header) in SURFACES.items():
            name, _, value = key_header.format(key=key).partition(": ")
            r = httpx.post(read_only.url + path, content=bodies[surface], headers={name: value})
            assert r.status_code == 503, r.text
            assert shape_of(json.loads(r.content)) == SHAPE[surface] and "database" in r.text
        lines = [line for line in read_only.log.read_text().splitlines() if "database unavailable" in line]
        assert len(lines) == len(SURFACES) and all("readonly" in line and "SQL" not in line for line in lines)
    finally:
        read_only.stop()


@pytest.mark.parametrize("method, path", [("POST", "/v1/no-such-route"), ("GET", "/v1/models"),
                                          ("POST", "/v1/chat/completions/")])
def test_an_answer_that_leaves_a_body_unread_says_it_closes_the_connection(gateway: Server, method: str,
                                                                           path: str) -> None:
    """The server closes a connection whose request body it did not read; an answer without
    `connection: close` made keep-alive clients reuse it and get a reset on their next request."""
    with httpx.Client(base_url=gateway.url, timeout=10,
                      headers={"Authorization": "Bearer sk-alice-0001"}) as http:
        first = http.request(method, path, content=b'{"x": "' + b"y" * 5000 + b'"}')
        assert first.headers.get("connection") == "close", (first.status_code, first.headers)
        for _ in range(3):   # the pooled connection was not reused: every request answers
            assert http.get("/v1/models").status_code == 200
