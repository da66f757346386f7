"""A 20 MB multipart image edit through the gateway keeps its RSS flat: the body is read once (up to
the route's cap), its files stay spans of it, and the upstream gets it as views with only the model
part re-emitted, written as the socket drains (docs/benchmarks.md, "Image edits")."""

from __future__ import annotations

import io
import time

import openai
import pytest

from servers import Admin, Server
from test_hostile_upstream import RSS_MARGIN_MB, rss_mb, settled_rss_mb
from test_images import _key, images_admin, images_gateway  # noqa: F401 (fixtures)

from polyrelay.sim.openai_images import png

MB = 1024 * 1024


@pytest.mark.slow
def test_twenty_mb_edit_keeps_rss_flat(images_gateway: Server, images_admin: Admin) -> None:
    name, key = _key(images_admin, quota=100.0)
    client = openai.OpenAI(base_url=images_gateway.url + "/v1", api_key=key, max_retries=0, timeout=120)
    big = png(8, 8) + bytes(20 * MB - 200)   # a PNG head, 20 MB in all

    def edit() -> float:
        started = time.perf_counter()
        resp = client.images.edit(model="gpt-image-mapped", prompt="make it pop", size="1024x1024",
                                  image=[("big.png", io.BytesIO(big), "image/png")])
        assert len(resp.data) == 1
        return time.perf_counter() - started

    edit()   # warm-up: the first large body sets the allocator's thresholds
    baseline = rss_mb(images_gateway)
    peak = baseline
    seconds = []
    for _ in range(5):
        seconds.append(edit())
        peak = max(peak, rss_mb(images_gateway))
    after = settled_rss_mb(images_gateway, baseline + RSS_MARGIN_MB)
    print(f"\n20 MB edit: RSS baseline {baseline:.0f} MB, highest seen between edits {peak:.0f} MB, "
          f"after 5 edits {after:.0f} MB; {min(seconds) * 1000:.0f}-{max(seconds) * 1000:.0f} ms each")
    assert after < baseline + RSS_MARGIN_MB, f"RSS {baseline:.0f} MB -> {after:.0f} MB"
    assert int(images_admin.key(name)["spent_micros"]) == 6 * 40_000
