"""Bad input gets a clear error in the caller's own shape, never a 500: valid requests with one value
swapped for random JSON, sent to every surface and routed to every channel kind."""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import golden_cases
from servers import Server

MODELS = ["gpt-4o-mini", "claude-sim-sonnet", "gemini-2.5-flash"]
JSON = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False, width=32)
                    | st.text(max_size=8), lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, prefix + (i,))
    return out


def _replace(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


def _send(gateway: Server, surface: str, model: str, body: Any, stream: bool) -> httpx.Response:
    content = json.dumps(body).encode()
    if surface == "openai":
        return httpx.post(gateway.url + "/v1/chat/completions", content=content, timeout=30,
                          headers={"Authorization": "Bearer sk-alice-0001", "Content-Type": "application/json"})
    if surface == "anthropic":
        return httpx.post(gateway.url + "/v1/messages", content=content, timeout=30,
                          headers={"x-api-key": "sk-alice-0001", "anthropic-version": "2023-06-01"})
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return httpx.post(f"{gateway.url}/v1beta/models/{model}:{method}", content=content, timeout=30,
                      headers={"x-goog-api-key": "sk-alice-0001"})


def _error_shape_ok(surface: str, payload: Any) -> bool:
    if surface == "anthropic":
        return payload.get("type") == "error" and "message" in payload["error"]
    return "message" in payload.get("error", {})


@pytest.mark.parametrize("surface, cases", [("openai", golden_cases.OPENAI), ("anthropic", golden_cases.ANTHROPIC),
                                            ("gemini", golden_cases.GEMINI)])
@settings(max_examples=int(os.environ.get("POLYRELAY_FUZZ_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_requests_never_get_a_500(gateway: Server, surface: str, cases: dict, data: st.DataObject) -> None:
    base = dict(data.draw(st.sampled_from(sorted(cases.items())))[1])
    model = data.draw(st.sampled_from(MODELS))
    if surface != "gemini":
        base["model"] = model
    stream = data.draw(st.booleans())
    if stream and surface != "gemini":
        base["stream"] = True
    path = data.draw(st.sampled_from(_paths(base)[1:]))
    mutated = _replace(base, path, data.draw(JSON))
    r = _send(gateway, surface, model, mutated, stream)
    assert r.status_code != 500, (path, mutated, r.text)
    if r.status_code >= 400:
        assert _error_shape_ok(surface, r.json()), r.text
