"""Fetching remote media for upstreams that need bytes (Gemini): bounded size, SSRF-guarded."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import os
import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yarl

from polyrelay import ir
from polyrelay.errors import GatewayError

MAX_MEDIA_BYTES = int(os.environ.get("POLYRELAY_MEDIA_MAX_MB", "20")) * 1024 * 1024
# Fetching from loopback/private addresses is refused (SSRF); tests and closed networks may allow it.
ALLOW_PRIVATE = os.environ.get("POLYRELAY_MEDIA_ALLOW_PRIVATE") == "1"
_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)


def _public_name(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


async def _check_host(host: str) -> str:
    """The address to connect to; refuse hosts that resolve to loopback, private, link-local or
    reserved addresses. The caller connects to this very address: a second lookup could be answered
    differently (DNS rebinding)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise GatewayError(400, "invalid_request", f"cannot resolve media host {host!r}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise GatewayError(400, "invalid_request", f"media host {host!r} is not a public address")
    if not infos:
        raise GatewayError(400, "invalid_request", f"cannot resolve media host {host!r}")
    return str(infos[0][4][0])


async def fetch(session: aiohttp.ClientSession, url: str, max_bytes: int = MAX_MEDIA_BYTES,
                allow_private: bool = False) -> tuple[str, bytes]:
    """(media type, bytes) of an http(s) URL, or a 400 GatewayError naming the URL (no query)."""
    try:
        name = _public_name(url)
        parts = urlsplit(url)
        target, host, port = yarl.URL(url), parts.hostname, parts.port
    except ValueError:
        raise GatewayError(400, "invalid_request", f"media URL {url.split('?')[0][:200]!r} is malformed") from None
    if parts.scheme not in ("http", "https") or not host:
        raise GatewayError(400, "invalid_request", f"media URL {name!r} must be http(s)")
    pinned: dict[str, Any] = {}
    if not allow_private:
        address = await _check_host(host)
        if address != host:  # connect to the checked address, name the host for HTTP and TLS
            pinned["headers"] = {"Host": target.raw_host + (f":{port}" if port else "")}
            if parts.scheme == "https":
                pinned["server_hostname"] = host
            target = target.with_host(address)
    try:
        async with session.get(target, timeout=_TIMEOUT, allow_redirects=False, **pinned) as resp:
            if resp.status != 200:
                raise GatewayError(400, "invalid_request", f"fetching {name!r} gave HTTP {resp.status}")
            chunks, size = [], 0
            async for chunk in resp.content.iter_chunked(65536):
                size += len(chunk)
                if size > max_bytes:
                    raise GatewayError(400, "invalid_request",
                                       f"media at {name!r} is larger than {max_bytes // (1024 * 1024)} MB")
                chunks.append(chunk)
            media_type = resp.headers.get("Content-Type", "application/octet-stream").split(";")[0].strip()
            return media_type, b"".join(chunks)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        raise GatewayError(400, "invalid_request", f"could not fetch {name!r}: {type(exc).__name__}") from None


def _remote(part: ir.Part, kinds: set[str]) -> bool:
    return isinstance(part, ir.MediaPart) and part.kind in kinds and bool(part.url) and \
        part.url.startswith(("http://", "https://"))  # type: ignore[union-attr]


async def inline_remote_media(req: ir.Request, kinds: set[str], session: aiohttp.ClientSession,
                              max_bytes: int = MAX_MEDIA_BYTES, allow_private: bool = False) -> None:
    """Replace http(s) media URLs of the given kinds by their bytes (base64), fetching concurrently."""
    targets = [p for m in req.messages for p in m.parts if _remote(p, kinds)]
    targets += [c for m in req.messages for p in m.parts if isinstance(p, ir.ToolResultPart)
                for c in p.content if _remote(c, kinds)]
    if not targets:
        return
    fetched = await asyncio.gather(*(fetch(session, p.url, max_bytes, allow_private)  # type: ignore[union-attr]
                                     for p in targets))
    for part, (media_type, data) in zip(targets, fetched):
        part.data = base64.b64encode(data).decode()  # type: ignore[union-attr]
        part.media_type = part.media_type or media_type  # type: ignore[union-attr]
        part.url = None  # type: ignore[union-attr]
