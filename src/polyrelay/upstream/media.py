"""Fetching remote media for upstreams that need bytes (Gemini): bounded size, SSRF-guarded."""

from __future__ import annotations

import asyncio
import binascii
import ipaddress
import os
import socket
from typing import Any, TypeGuard, cast
from urllib.parse import urlsplit

import aiohttp
import yarl

from polyrelay import ir
from polyrelay.errors import GatewayError

MAX_MEDIA_BYTES = int(os.environ.get("POLYRELAY_MEDIA_MAX_MB", "20")) * 1024 * 1024
MAX_URLS = int(os.environ.get("POLYRELAY_MEDIA_MAX_URLS", "16"))   # media URLs one request may have fetched
MAX_TOTAL_BYTES = int(os.environ.get("POLYRELAY_MEDIA_MAX_TOTAL_MB", "50")) * 1024 * 1024   # of one request
CONCURRENCY = 4   # fetches at once for one request
# Fetching from loopback/private addresses is refused (SSRF); tests and closed networks may allow it.
ALLOW_PRIVATE = os.environ.get("POLYRELAY_MEDIA_ALLOW_PRIVATE") == "1"
_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)


def _public_name(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


_NAT64 = ipaddress.ip_network("64:ff9b::/96")         # well-known NAT64: the last 32 bits are an IPv4 address
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # local-use NAT64: translates into private networks
_V4_COMPATIBLE = ipaddress.ip_network("::/96")         # deprecated IPv4-compatible ::a.b.c.d


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address reaches through: IPv4-mapped, 6to4, NAT64, IPv4-compatible."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _V4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A global address that does not lead (through a translation or tunnel form) to a private one."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return False
        inner = embedded_ipv4(address)
        if inner is not None:
            return inner.is_global and not inner.is_multicast
    return address.is_global and not address.is_multicast


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
        if not is_public(ipaddress.ip_address(info[4][0])):
            raise GatewayError(400, "invalid_request", f"media host {host!r} is not a public address")
    if not infos:
        raise GatewayError(400, "invalid_request", f"cannot resolve media host {host!r}")
    return str(infos[0][4][0])


class _Budget:
    """Bytes one request's media may still take, shared by its concurrent fetches."""

    __slots__ = ("left", "total")

    def __init__(self, total: int) -> None:
        self.left = self.total = total


async def fetch(session: aiohttp.ClientSession, url: str, max_bytes: int = MAX_MEDIA_BYTES,
                allow_private: bool = False, budget: _Budget | None = None) -> tuple[str, str]:
    """(media type, base64 of the bytes) of an http(s) URL, or a 400 GatewayError naming the URL
    (no query). The bytes are encoded as they arrive: only the base64 text is held."""
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
            pinned["headers"] = {"Host": (target.raw_host or host) + (f":{port}" if port else "")}
            if parts.scheme == "https":
                pinned["server_hostname"] = host
            target = target.with_host(address)
    try:
        async with session.get(target, timeout=_TIMEOUT, allow_redirects=False, **pinned) as resp:
            if resp.status != 200:
                raise GatewayError(400, "invalid_request", f"fetching {name!r} gave HTTP {resp.status}")
            encoded, carry, size = bytearray(), b"", 0
            async for chunk in resp.content.iter_chunked(65535):   # a multiple of 3: no carry between
                size += len(chunk)
                if size > max_bytes:
                    raise GatewayError(400, "invalid_request",
                                       f"media at {name!r} is larger than {max_bytes // (1024 * 1024)} MB")
                if budget is not None:
                    budget.left -= len(chunk)
                    if budget.left < 0:
                        raise GatewayError(400, "invalid_request", "the media URLs of this request add up to "
                                           f"more than {budget.total // (1024 * 1024)} MB")
                if carry:
                    chunk = carry + chunk
                whole = len(chunk) - len(chunk) % 3
                carry = chunk[whole:]
                encoded += binascii.b2a_base64(chunk[:whole] if carry else chunk, newline=False)
            if carry:
                encoded += binascii.b2a_base64(carry, newline=False)
            media_type = resp.headers.get("Content-Type", "application/octet-stream").split(";")[0].strip()
            return media_type, encoded.decode("ascii")
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        raise GatewayError(400, "invalid_request", f"could not fetch {name!r}: {type(exc).__name__}") from None


def _remote(part: ir.Part, kinds: set[str]) -> TypeGuard[ir.MediaPart]:
    if not isinstance(part, ir.MediaPart) or part.kind not in kinds or not part.url:
        return False
    return part.url.startswith(("http://", "https://"))


async def inline_remote_media(req: ir.Request, kinds: set[str], session: aiohttp.ClientSession,
                              max_bytes: int = MAX_MEDIA_BYTES, allow_private: bool = False,
                              max_urls: int = MAX_URLS, max_total: int = MAX_TOTAL_BYTES) -> None:
    """Replace http(s) media URLs of the given kinds by their bytes (base64): at most `max_urls`
    URLs and `max_total` bytes in all, CONCURRENCY fetches at a time; the first failure cancels
    the others (a 400 naming the URL)."""
    targets = [p for m in req.messages for p in m.parts if _remote(p, kinds)]
    targets += [c for m in req.messages for p in m.parts if isinstance(p, ir.ToolResultPart)
                for c in p.content if _remote(c, kinds)]
    if not targets:
        return
    if len(targets) > max_urls:
        raise GatewayError(400, "invalid_request", f"a request may have at most {max_urls} media URLs fetched "
                           f"for this model (it has {len(targets)}); send the bytes inline instead")
    budget, queue = _Budget(max_total), iter(targets)

    async def worker() -> None:
        for part in queue:   # shared: each part is fetched once, by whichever worker is free
            url = cast(str, part.url)   # _remote chose parts with an http(s) URL
            media_type, data = await fetch(session, url, max_bytes, allow_private, budget)
            part.data, part.url = data, None
            part.media_type = part.media_type or media_type

    # Plain tasks rather than a TaskGroup: its exception group sits in a reference cycle with a
    # frame of the group (Python 3.11), which kept every failed request's fetched bytes.
    workers = [asyncio.ensure_future(worker()) for _ in range(min(CONCURRENCY, len(targets)))]
    try:
        await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in workers:
            task.cancel()   # the others, after the first failure (or when the client left)
    for task in workers:
        if not task.cancelled() and task.exception() is not None:
            # a fresh error: raising the task's own from this frame, which holds the task, would be
            # a cycle again (and its traceback keeps the fetch's frames and bytes)
            error = task.exception()
            if isinstance(error, GatewayError):
                raise GatewayError(error.status, error.kind, error.message, param=error.param) from None
            raise RuntimeError(f"fetching media failed: {type(error).__name__}") from error
