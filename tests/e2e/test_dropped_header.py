"""Over HTTP, the client and the request log see what a conversion lost: the `x-polyrelay-dropped`
header and the log row's `dropped` column (the losses themselves: tests/conversion/test_dropped_fields.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


def _log_row(admin: Any, request_id: str) -> dict[str, Any]:
    return next(row for row in admin.logs(limit=20) if row["request_id"] == request_id)


@pytest.mark.parametrize("stream", [False, True])
def test_a_dropped_field_is_in_the_header_and_the_log_row(gateway: Any, admin: Any, stream: bool) -> None:
    """OpenAI client -> Anthropic channel: logit_bias and a fifth stop sequence have nowhere to go."""
    body = {"model": "claude-sim-sonnet", "stream": stream, "logit_bias": {"50256": -100}, "seed": 7,
            "messages": [{"role": "user", "content": "hi [[sim:words=3]]"}]}
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body,
                      headers={"Authorization": "Bearer sk-alice-0001"}) as r:
        r.read()
    assert r.status_code == 200, r.text
    header = r.headers["x-polyrelay-dropped"]
    assert header == ("logit_bias: dropped (no equivalent in Anthropic or Gemini channels); "
                      "seed: dropped (no equivalent in Anthropic Messages)")
    assert _log_row(admin, r.headers["x-request-id"])["dropped"] == header


def test_nothing_lost_means_no_header_and_a_null_log_column(gateway: Any, admin: Any) -> None:
    r = httpx.post(gateway.url + "/v1/chat/completions", headers={"Authorization": "Bearer sk-alice-0001"},
                   json={"model": "claude-sim-sonnet", "messages": [{"role": "user", "content": "hi [[sim:words=2]]"}]})
    assert r.status_code == 200 and "x-polyrelay-dropped" not in r.headers
    assert _log_row(admin, r.headers["x-request-id"])["dropped"] is None


def test_the_header_carries_only_printable_ascii_of_client_text(gateway: Any) -> None:
    """Dropped stop sequences are the client's own text: control characters and non-ASCII become '?'."""
    stops = ["a", "b", "c", "d", "e\r\nx-injected: 1", "\u00e9t\u00e9"]
    r = httpx.post(gateway.url + "/v1/messages",
                   headers={"x-api-key": "sk-alice-0001", "anthropic-version": "2023-06-01"},
                   json={"model": "gpt-4o-mini", "max_tokens": 20, "stop_sequences": stops,
                         "messages": [{"role": "user", "content": "hi [[sim:words=2]]"}]})
    assert r.status_code == 200, r.text
    header = r.headers["x-polyrelay-dropped"]
    assert header.startswith("stop: dropped (OpenAI Chat takes at most 4 sequences; dropped 2")
    assert "x-injected" in header and "\r" not in header and "\n" not in header and "x-injected" not in r.headers
    assert header.isascii() and header.isprintable()


def test_a_refusal_is_still_a_400_over_http(gateway: Any) -> None:
    r = httpx.post(gateway.url + "/v1/chat/completions", headers={"Authorization": "Bearer sk-alice-0001"},
                   json={"model": "claude-sim-sonnet", "logprobs": True,
                         "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "logprobs"
    assert "x-polyrelay-dropped" not in r.headers
