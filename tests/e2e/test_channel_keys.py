"""A channel's upstream keys take turns, over HTTP (the channel choice itself: tests/unit/routing/)."""

from __future__ import annotations

import httpx


def test_channel_keys_rotate(client, sim_http: httpx.Client) -> None:
    sim_http.post("/sim/reset")
    for _ in range(4):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    keys = [r["headers"]["authorization"] for r in sim_http.get("/sim/requests").json()]
    assert keys.count("Bearer sk-up-1") == 2 and keys.count("Bearer sk-up-2") == 2
