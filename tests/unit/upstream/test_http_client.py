"""The lean upstream HTTP client against a raw socket server that answers with scripted bytes."""

from __future__ import annotations

import asyncio
import gzip
import random
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from polyrelay.upstream.client import Timeouts, UpstreamClient, UpstreamTimeout, UpstreamTransportError

FAST = Timeouts(connect=2.0, read=2.0, total=5.0)
Answer = Callable[[int], bytes | None]   # request number on this connection -> raw response (None: close)


async def _serve(answer: Answer) -> tuple[asyncio.Server, str, list[int]]:
    """A server that reads one request head + body at a time and writes `answer(n)`."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                await reader.readexactly(length)
                raw = answer(n)
                n += 1
                if raw is None:
                    break
                writer.write(raw)
                await writer.drain()
                if b"connection: close" in raw.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1/x", connections


@pytest.fixture
async def client() -> AsyncIterator[UpstreamClient]:
    c = UpstreamClient()
    yield c
    await c.close()


def _ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra) + body


async def test_keep_alive_reuses_one_connection(client: UpstreamClient) -> None:
    server, url, connections = await _serve(lambda n: _ok(b'{"n": %d}' % n))
    async with server:
        for n in range(3):
            resp = await client.post(url, {"Content-Type": "application/json"}, b"{}", FAST)
            assert resp.status == 200 and await resp.read() == b'{"n": %d}' % n
        assert len(connections) == 1


async def test_stale_idle_connection_is_retried_once_on_a_new_one(client: UpstreamClient) -> None:
    # The server closes each connection after its first answer, as an upstream with a short keep-alive would.
    server, url, connections = await _serve(lambda n: _ok(b"hi") if n == 0 else None)
    async with server:
        assert await (await client.post(url, {}, b"a", FAST)).read() == b"hi"
        await asyncio.sleep(0.05)
        assert await (await client.post(url, {}, b"b", FAST)).read() == b"hi"
        assert len(connections) == 2


async def test_gzip_chunked_and_informational_responses_are_decoded(client: UpstreamClient) -> None:
    plain = random.Random(1).randbytes(5000)
    packed = gzip.compress(plain)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (packed[:100], packed[100:])) + b"0\r\n\r\n"
    raw = (b"HTTP/1.1 100 Continue\r\n\r\n"
           b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n" + chunked)
    server, url, _ = await _serve(lambda n: raw)
    async with server:
        resp = await client.post(url, {}, b"{}", FAST)
        assert resp.status == 200 and resp.header(b"content-encoding") == b"gzip"
        assert await resp.read() == plain


async def test_close_delimited_body_and_streamed_reads(client: UpstreamClient) -> None:
    server, url, _ = await _serve(
        lambda n: b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it" if n == 0 else None)
    async with server:
        resp = await client.post(url, {}, b"{}", FAST)
        got = b""
        while chunk := await resp.readany():
            got += chunk
        resp.release()
        assert got == b"all of it"


async def test_large_body_pauses_and_resumes_without_loss(client: UpstreamClient) -> None:
    big = bytes(range(256)) * 16384   # 4 MiB, past the high-water mark
    server, url, _ = await _serve(lambda n: _ok(big))
    async with server:
        resp = await client.post(url, {}, b"{}", FAST)
        got = bytearray()
        while chunk := await resp.readany():
            got += chunk
            await asyncio.sleep(0)
        resp.release()
        assert bytes(got) == big
        assert await (await client.post(url, {}, b"{}", FAST)).read() == big


async def test_truncated_body_is_an_error_not_a_short_success(client: UpstreamClient) -> None:
    truncated = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nonly this"
    server, url, _ = await _serve(lambda n: truncated if n == 0 else None)
    async with server:
        resp = await client.post(url, {}, b"{}", FAST)
        with pytest.raises(UpstreamTransportError):
            await resp.read()


async def test_silent_upstream_times_out_and_refused_connection_is_a_transport_error(client: UpstreamClient) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(UpstreamTimeout):
            await client.post(f"http://127.0.0.1:{port}/", {}, b"{}", Timeouts(connect=1, read=0.2, total=None))
    with pytest.raises(UpstreamTransportError):
        await client.post(f"http://127.0.0.1:{port}/", {}, b"{}", FAST)


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


async def _answer_secure(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer every 2-byte-body request on the connection with 'secure'."""
    try:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)
            writer.write(_ok(b"secure"))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def test_https_with_sni_and_keep_alive(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    seen: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(1)
        await _answer_secure(reader, writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    client = UpstreamClient(tls=ssl.create_default_context(cafile=str(cert)))
    try:
        async with server:
            # "localhost" must match the certificate: the client sends SNI and checks the name
            for _ in range(2):
                resp = await client.post(f"https://localhost:{port}/v1/x", {}, b"{}", FAST)
                assert await resp.read() == b"secure"
            assert len(seen) == 1
            untrusting = UpstreamClient()
            with pytest.raises(UpstreamTransportError):
                await untrusting.post(f"https://localhost:{port}/v1/x", {}, b"{}", FAST)
            await untrusting.close()
    finally:
        await client.close()


async def _start_proxy(log: list[bytes]) -> tuple[asyncio.Server, str]:
    """A small HTTP proxy: CONNECT tunnels, and absolute-form requests forwarded to their host."""
    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        log.append(head)
        method, target, _ = head.split(b"\r\n", 1)[0].split(b" ")
        if method == b"CONNECT":
            host, _, port = target.decode().rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:   # absolute form: forward the request as it came to the origin
            from urllib.parse import urlsplit
            parts = urlsplit(target.decode())
            up_reader, up_writer = await asyncio.open_connection(parts.hostname, parts.port)
            up_writer.write(head)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://user:p%40ss@127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_http_upstream_through_a_proxy_with_credentials(client: UpstreamClient) -> None:
    log: list[bytes] = []
    upstream, url, _ = await _serve(lambda n: _ok(b"via proxy %d" % n))
    proxy, proxy_url = await _start_proxy(log)
    async with upstream, proxy:
        for n in range(2):
            resp = await client.post(url, {}, b"{}", FAST, proxy=proxy_url)
            assert await resp.read() == b"via proxy %d" % n
    assert len(log) == 1, "the connection to the proxy is kept alive"
    assert log[0].startswith(b"POST " + url.encode() + b" HTTP/1.1\r\n")
    assert b"Proxy-Authorization: Basic dXNlcjpwQHNz\r\n" in log[0]   # user:p@ss


async def test_https_upstream_through_a_connect_tunnel(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    upstream = await asyncio.start_server(_answer_secure, "127.0.0.1", 0, ssl=server_tls)
    port = upstream.sockets[0].getsockname()[1]
    log: list[bytes] = []
    proxy, proxy_url = await _start_proxy(log)
    client = UpstreamClient(tls=ssl.create_default_context(cafile=str(cert)))
    try:
        async with upstream, proxy:
            for _ in range(2):
                resp = await client.post(f"https://localhost:{port}/v1/x", {}, b"{}", FAST, proxy=proxy_url)
                assert await resp.read() == b"secure"
            refused = UpstreamClient(tls=ssl.create_default_context(cafile=str(cert)))
            with pytest.raises(UpstreamTransportError):   # the proxy cannot reach this port
                await refused.post("https://localhost:1/v1/x", {}, b"{}", FAST, proxy=proxy_url)
            await refused.close()
    finally:
        await client.close()
    assert log[0].startswith(b"CONNECT localhost:%d HTTP/1.1\r\n" % port) and len(log) == 2


async def test_a_request_is_retried_once_at_most_when_pooled_connections_die(client: UpstreamClient) -> None:
    # Each connection answers its first request; later ones are read and dropped unanswered, as an
    # upstream that ran the request and then lost the connection: sending it again and again would
    # run it again and again.
    received: list[int] = []
    server, url, connections = await _serve(lambda n: (received.append(n), _ok(b"ok") if n == 0 else None)[1])
    async with server:
        first = await asyncio.gather(*(client.post(url, {}, b"{}", FAST) for _ in range(3)))
        for resp in first:
            assert await resp.read() == b"ok"
        assert len(connections) == 3
        before = len(received)
        assert await (await client.post(url, {}, b"{}", FAST)).read() == b"ok"
        sent = len(received) - before
        # one stale connection, then a new one, which answers: two sends, not one per pooled connection
        assert sent == 2, f"the request was sent {sent} times"


async def test_connection_with_an_unsent_body_is_not_pooled(client: UpstreamClient) -> None:
    connections: list[int] = []

    async def early_401(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await reader.readuntil(b"\r\n\r\n")   # answers before reading the body, like an auth check
        writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)
        writer.close()

    server = await asyncio.start_server(early_401, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/x"
    async with server:
        resp = await client.post(url, {}, b"x" * (32 << 20), FAST)
        assert resp.status == 401 and await resp.read() == b""
        assert not client._idle.get((("http", "127.0.0.1", server.sockets[0].getsockname()[1]), None))


async def test_a_second_answer_to_one_request_is_never_taken_for_the_next(client: UpstreamClient) -> None:
    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        writer.write(_ok(b"first") + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale")   # one answer too many
        await writer.drain()
        await asyncio.sleep(2)
        writer.close()

    server = await asyncio.start_server(chatty, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        try:
            body = await (await client.post(f"http://127.0.0.1:{port}/v1/x", {}, b"{}", FAST)).read()
            assert body == b"first"
        except UpstreamTransportError:
            pass   # refusing the whole exchange is fine too; mixing the answers is not
        await asyncio.sleep(0.1)
        assert not client._idle.get((("http", "127.0.0.1", port), None)), "that connection is not reused"


async def test_a_response_released_twice_goes_back_to_the_pool_once(client: UpstreamClient) -> None:
    server, url, _ = await _serve(lambda n: _ok(b"ok"))
    port = server.sockets[0].getsockname()[1]
    async with server:
        resp = await client.post(url, {}, b"{}", FAST)
        assert await resp.read() == b"ok"
        resp.release()
        assert len(client._idle[(("http", "127.0.0.1", port), None)]) == 1


# ---- bounded bodies: size limits, decompression bombs, error heads, connections freed --------------

def _bomb(megabytes: int) -> bytes:
    from hostile_upstream import gzip_bomb

    body = gzip_bomb(megabytes)
    return b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body


async def test_a_gzip_bomb_stops_at_the_limit_without_being_inflated_whole(client: UpstreamClient) -> None:
    """256 MB of zeros in 256 KB of gzip, read whole with an 8 MB limit: inflated in 256 KB steps up
    to the limit (before: one decompress call made all 256 MB, and there was no limit)."""
    import tracemalloc

    from polyrelay.upstream.client import UpstreamTooLarge

    raw = _bomb(256)
    server, url, _ = await _serve(lambda n: raw)
    async with server:
        resp = await client.post(url, {}, b"{}", FAST)
        tracemalloc.start()
        try:
            with pytest.raises(UpstreamTooLarge, match="larger than 8 MB"):
                await resp.read(limit=8 * 1024 * 1024)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 12 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB"


async def test_a_gzip_bomb_read_as_a_stream_is_inflated_as_it_is_read(client: UpstreamClient) -> None:
    import tracemalloc

    raw = _bomb(64)
    server, url, _ = await _serve(lambda n: raw)
    async with server:
        resp = await client.post(url, {}, b"{}", FAST)
        tracemalloc.start()
        total = biggest = 0
        try:
            while chunk := await resp.readany():
                total += len(chunk)
                biggest = max(biggest, len(chunk))
                del chunk
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            resp.release()
    assert total == 64 * 1024 * 1024
    assert biggest <= 2 * 1024 * 1024 and peak < 8 * 1024 * 1024, f"chunk {biggest}, peak {peak / 1e6:.0f} MB"


async def test_a_plain_answer_over_the_limit_is_refused_and_one_under_it_is_whole(client: UpstreamClient) -> None:
    from polyrelay.upstream.client import UpstreamTooLarge

    server, url, _ = await _serve(lambda n: _ok(b"x" * (1000 + n)))
    async with server:
        assert len(await (await client.post(url, {}, b"{}", FAST)).read(limit=1000)) == 1000
        with pytest.raises(UpstreamTooLarge):
            await (await client.post(url, {}, b"{}", FAST)).read(limit=1000)


async def test_only_the_head_of_an_error_body_is_read_and_the_connection_closes(client: UpstreamClient) -> None:
    big = b"e" * (8 * 1024 * 1024)
    server, url, connections = await _serve(
        lambda n: b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n" % len(big) + big)
    async with server:
        resp = await client.post(url, {}, b"{}", FAST)
        head = await resp.read_head()
        assert resp.status == 500 and head == big[:65536]
        resp = await client.post(url, {}, b"{}", FAST)   # the first connection could not be reused
        assert await resp.read_head(10) == b"eeeeeeeeee"
        assert len(connections) == 2


async def test_a_closed_connection_is_freed_without_the_cycle_collector(client: UpstreamClient) -> None:
    """The parser holds the connection's callbacks; a lost connection must drop it, or its buffers
    wait for a full collection (rare in the gateway: gc.freeze and a 20,000 threshold)."""
    import gc
    import weakref

    server, url, _ = await _serve(lambda n: b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
    gc.disable()
    try:
        async with server:
            resp = await client.post(url, {}, b"{}", FAST)
            ref = weakref.ref(resp._conn)
            assert await resp.read() == b"ok"
            del resp
            for _ in range(20):
                await asyncio.sleep(0.01)
                if ref() is None:
                    break
            assert ref() is None
    finally:
        gc.enable()


async def test_a_body_in_parts_arrives_whole_and_is_written_as_the_socket_drains(client: UpstreamClient) -> None:
    """A multipart edit with its model part re-emitted: three views, 24 MB, never joined. The
    transport's buffer stays near one slice (flow control), not the body."""
    received: list[bytes] = []

    async def slow_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        body = bytearray()
        while len(body) < length:
            body += await reader.read(1 << 16)
            await asyncio.sleep(0)
        received.append(bytes(body))
        writer.write(_ok(b"{}"))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(slow_reader, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/x"
    whole = random.Random(7).randbytes(24 << 20)
    view = memoryview(whole)
    parts = (view[:1000], b"gpt-image-1", view[2000:])
    buffered: list[int] = []
    transport_class = asyncio.selector_events._SelectorSocketTransport  # type: ignore[attr-defined]
    original = transport_class.write

    def spy(self: asyncio.Transport, data: bytes | bytearray | memoryview) -> None:
        original(self, data)
        buffered.append(self.get_write_buffer_size())

    async with server:
        transport_class.write = spy
        try:
            resp = await client.post(url, {}, parts, FAST)
        finally:
            transport_class.write = original
        assert resp.status == 200 and await resp.read() == b"{}"
    assert received == [whole[:1000] + b"gpt-image-1" + whole[2000:]]
    assert max(buffered) < 2 << 20, max(buffered)   # at most a few slices, never the 24 MB
