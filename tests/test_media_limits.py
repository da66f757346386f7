"""Media inlining for channels that need bytes: bounded in URLs, bytes and concurrency, encoded as it
arrives, memory given back; and the SSRF guard sees private addresses in their IPv6 disguises."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
from collections.abc import Iterator

import aiohttp
import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from polyrelay import ir
from polyrelay.errors import GatewayError
from polyrelay.upstream import media
from servers import Server
from test_hostile_upstream import RSS_MARGIN_MB, rss_mb, settled_rss_mb

MB = 1024 * 1024

PRIVATE_IN_DISGUISE = [
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",   # IPv4-mapped
    "::127.0.0.1", "::10.1.2.3", "::192.168.0.1",                      # IPv4-compatible (deprecated)
    "64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::c0a8:101",   # NAT64 of private v4
    "64:ff9b:1::808:808", "64:ff9b:1::1",                              # local-use NAT64: always private
    "2002:7f00:1::1", "2002:a9fe:a9fe::", "2002:c0a8:101::1", "2002:a00:1::",   # 6to4 of private v4
    "127.0.0.1", "10.0.0.1", "169.254.169.254", "::1", "fc00::1", "fe80::1", "::", "0.0.0.0", "224.0.0.1",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", PRIVATE_IN_DISGUISE)
def test_private_addresses_in_any_form_are_refused(address: str) -> None:
    assert not media.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_stay_allowed(address: str) -> None:
    assert media.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1",
                                     "64:ff9b:1::808:808"])
async def test_fetching_a_disguised_private_address_is_a_400(address: str) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(GatewayError, match="not a public address") as caught:
            await media.fetch(session, f"http://[{address}]:8080/x.png")
    assert caught.value.status == 400


class _Sizes:
    """An image server: /<n>.png is n bytes (a pattern, so base64 mistakes show), counting fetches in flight."""

    def __init__(self) -> None:
        self.in_flight = self.most = 0

    async def image(self, request: web.Request) -> web.StreamResponse:
        size = int(request.match_info["size"])
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.05)
            resp = web.StreamResponse(headers={"Content-Type": "image/png", "Content-Length": str(size)})
            await resp.prepare(request)
            pattern = bytes(range(251)) * (64 * 1024 // 251 + 1)
            sent = 0
            try:
                while sent < size:
                    piece = pattern[:min(len(pattern), size - sent)]
                    await resp.write(piece)
                    sent += len(piece)
            except ConnectionError:
                pass   # the gateway hung up on purpose (a size cap)
            return resp
        finally:
            self.in_flight -= 1


async def _serve(sizes: _Sizes) -> TestServer:
    app = web.Application()
    app.router.add_get("/{size:[0-9]+}.png", sizes.image)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


def _request(urls: list[str]) -> ir.Request:
    return ir.Request(model="m", messages=[ir.Message("user", [ir.MediaPart("image", url=u) for u in urls])])


async def test_fetches_are_four_at_a_time_and_encoded_exactly() -> None:
    sizes = _Sizes()
    server = await _serve(sizes)
    lengths = [100_001, 65_535, 65_536, 1, 2, 3, 300_000, 131_071, 7, 8, 9, 200_002]
    req = _request([f"http://127.0.0.1:{server.port}/{n}.png" for n in lengths])
    try:
        async with aiohttp.ClientSession() as session:
            await media.inline_remote_media(req, {"image"}, session, allow_private=True)
    finally:
        await server.close()
    assert sizes.most == media.CONCURRENCY == 4
    pattern = bytes(range(251)) * (64 * 1024 // 251 + 1)
    for n, part in zip(lengths, req.messages[0].parts, strict=True):
        expected = b"".join(pattern[:min(len(pattern), n - i)] for i in range(0, n, len(pattern)))
        assert part.url is None and part.data == base64.b64encode(expected).decode() and part.media_type == "image/png"


async def test_too_many_urls_or_too_many_bytes_is_a_400() -> None:
    sizes = _Sizes()
    server = await _serve(sizes)
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(GatewayError, match="at most 16 media URLs") as caught:
                await media.inline_remote_media(_request([f"{base}/10.png"] * 17), {"image"}, session,
                                                allow_private=True)
            assert caught.value.status == 400 and sizes.most == 0   # refused before any fetch
            with pytest.raises(GatewayError, match="add up to more than 2 MB") as caught:
                await media.inline_remote_media(_request([f"{base}/{MB}.png"] * 3), {"image"}, session,
                                                allow_private=True, max_total=2 * MB)
            assert caught.value.status == 400
    finally:
        await server.close()


@pytest.fixture(scope="module")
def big_images() -> Iterator[str]:
    sizes = _Sizes()
    loop = asyncio.new_event_loop()
    import threading

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(_serve(sizes), loop).result(10)
    yield f"http://127.0.0.1:{server.port}"
    asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_ten_19_mb_urls_are_refused_at_the_budget_and_memory_comes_back(gateway: Server, big_images: str) -> None:
    """Before: all ten fetched at once and kept (+0.5-0.8 GB for good); now at most 50 MB in all."""
    def ask(count: int) -> httpx.Response:
        content = [{"type": "image_url", "image_url": {"url": f"{big_images}/{19 * MB}.png?n={i}"}}
                   for i in range(count)]
        return httpx.post(gateway.url + "/v1/chat/completions", timeout=120,
                          headers={"Authorization": "Bearer sk-alice-0001"},
                          content=json.dumps({"model": "gemini-2.5-flash",
                                              "messages": [{"role": "user", "content": content}]}))
    ask(10)   # warm-up
    baseline = rss_mb(gateway)
    for _ in range(3):
        r = ask(10)
        assert r.status_code == 400 and "add up to more than 50 MB" in r.json()["error"]["message"]
    r = ask(17)
    assert r.status_code == 400 and "at most 16 media URLs" in r.json()["error"]["message"]
    after = settled_rss_mb(gateway, baseline + RSS_MARGIN_MB)
    assert after < baseline + RSS_MARGIN_MB, f"RSS {baseline:.0f} MB -> {after:.0f} MB"
