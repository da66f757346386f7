"""A 50 MB video download through the gateway keeps its memory flat (issue 13): the content is
streamed from the upstream to the client as it comes, never held (figure in docs/benchmarks.md)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from test_hostile_upstream import rss_mb

from servers import Admin, Server, start_gateway

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

MB = 1024 * 1024
FLAT_MB = 12   # the whole video is 50 MB; the gateway may grow by a few buffers, never by the file


@pytest.fixture(scope="module")
def gateway_for_content(sim: Server, workdir: Path) -> Iterator[Server]:
    config = f"""
channels:
  - name: sora
    type: openai
    base_url: {sim.url}/v1
    api_keys: [sk-up-sora]
    models: [sora-2]
prices:
  sora-2: {{per_second: 0.1}}
"""
    server = start_gateway(config, workdir, db_name="video-memory.db")
    yield server
    server.stop()


def test_a_50_mb_download_keeps_the_gateway_rss_flat(gateway_for_content: Server) -> None:
    gateway = gateway_for_content
    key = Admin(gateway.url).create_key("downloader")
    client = openai.OpenAI(api_key=key, base_url=gateway.url + "/v1", max_retries=0, timeout=60)
    small = client.videos.create_and_poll(model="sora-2", prompt="warm-up [[sim:video_ms=50,video_kb=2048]]",
                                          poll_interval_ms=50)
    assert len(client.videos.download_content(small.id).content) == 2 * MB   # warm the path up
    video = client.videos.create_and_poll(model="sora-2", prompt="big [[sim:video_ms=50,video_kb=51200]]",
                                          poll_interval_ms=50)
    baseline = rss_mb(gateway)
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb(gateway))
            done.wait(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    received = 0
    try:
        with client.with_streaming_response.videos.download_content(video.id) as response:
            assert response.headers["content-length"] == str(50 * MB)
            for chunk in response.iter_bytes(256 * 1024):
                received += len(chunk)
    finally:
        done.set()
        sampler.join()
    assert received == 50 * MB
    grew = peak[0] - baseline
    print(f"\ngateway RSS {baseline:.1f} MB before, peak {peak[0]:.1f} MB during a 50 MB download (+{grew:.1f} MB)")
    assert grew < FLAT_MB, f"RSS {baseline:.1f} MB -> peak {peak[0]:.1f} MB"
