"""Media URLs through the gateway: ten 19 MB images are refused at the byte budget and the memory
comes back (the limits themselves: tests/unit/upstream/test_media_limits.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from test_hostile_upstream import RSS_MARGIN_MB, rss_mb, settled_rss_mb

from servers import Server
from sized_images import Sizes, serve

MB = 1024 * 1024


@pytest.fixture(scope="module")
def big_images() -> Iterator[str]:
    sizes = Sizes()
    loop = asyncio.new_event_loop()
    import threading

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(serve(sizes), loop).result(10)
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
