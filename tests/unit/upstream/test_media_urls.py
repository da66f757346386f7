"""Review of media.py: malformed URLs are a 400 (not a 500), and the address that passed the SSRF
check is the one connected to (no second DNS lookup an attacker's resolver could answer differently)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from polyrelay import ir
from polyrelay.errors import GatewayError
from polyrelay.upstream import media


@pytest.mark.parametrize("url", ["http://[::1/x.png", "http://" + "a" * 64 + ".example/x.png",
                                 "http://exa\x00mple.com/x.png", "http://example.com:99999/x.png"])
async def test_malformed_media_urls_are_a_400(url: str) -> None:
    req = ir.Request(model="m", messages=[ir.Message("user", [ir.MediaPart("image", url=url)])])
    async with aiohttp.ClientSession() as session:
        with pytest.raises(GatewayError) as caught:
            await media.inline_remote_media(req, {"image"}, session)
    assert caught.value.status == 400


async def test_the_checked_address_is_the_one_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    hits: list[str] = []

    async def pixel(request: web.Request) -> web.Response:
        hits.append(request.host)
        return web.Response(body=b"png", content_type="image/png")

    app = web.Application()
    app.router.add_get("/x.png", pixel)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo
    answers = iter(["2606:4700:4700::1111"])  # public for the check, loopback for any later lookup

    async def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return await real(host, *args, **kwargs)
        address = next(answers, "127.0.0.1")
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sockaddr = (address, server.port, 0, 0) if family == socket.AF_INET6 else (address, server.port)
        return [(family, socket.SOCK_STREAM, 6, "", sockaddr)]

    monkeypatch.setattr(loop, "getaddrinfo", rebinding)
    monkeypatch.setattr(media, "_TIMEOUT", aiohttp.ClientTimeout(total=2))
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(GatewayError):
                await media.fetch(session, f"http://rebind.test:{server.port}/x.png")
    finally:
        await server.close()
    assert hits == []
