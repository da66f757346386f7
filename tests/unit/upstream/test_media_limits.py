"""Media inlining for channels that need bytes: bounded in URLs, bytes and concurrency, encoded as it
arrives; and the SSRF guard sees private addresses in their IPv6 disguises (memory given back, over
HTTP: tests/e2e/test_media_memory.py)."""

from __future__ import annotations

import base64
import ipaddress

import aiohttp
import pytest

from polyrelay import ir
from polyrelay.errors import GatewayError
from polyrelay.upstream import media
from sized_images import PATTERN, Sizes, serve

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


def _request(urls: list[str]) -> ir.Request:
    return ir.Request(model="m", messages=[ir.Message("user", [ir.MediaPart("image", url=u) for u in urls])])


async def test_fetches_are_four_at_a_time_and_encoded_exactly() -> None:
    sizes = Sizes()
    server = await serve(sizes)
    lengths = [100_001, 65_535, 65_536, 1, 2, 3, 300_000, 131_071, 7, 8, 9, 200_002]
    req = _request([f"http://127.0.0.1:{server.port}/{n}.png" for n in lengths])
    try:
        async with aiohttp.ClientSession() as session:
            await media.inline_remote_media(req, {"image"}, session, allow_private=True)
    finally:
        await server.close()
    assert sizes.most == media.CONCURRENCY == 4
    for n, part in zip(lengths, req.messages[0].parts, strict=True):
        expected = b"".join(PATTERN[:min(len(PATTERN), n - i)] for i in range(0, n, len(PATTERN)))
        assert part.url is None and part.data == base64.b64encode(expected).decode() and part.media_type == "image/png"


async def test_too_many_urls_or_too_many_bytes_is_a_400() -> None:
    sizes = Sizes()
    server = await serve(sizes)
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
