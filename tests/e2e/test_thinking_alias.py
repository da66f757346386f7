"""Model aliases (routing/aliases.py): `<claude model>-thinking` is the base model with thinking on,
with one budget rule whichever protocol the client speaks (docs/conversion.md, "Model aliases")."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from polyrelay.protocols.registry import PROTOCOLS
from sdk_clients import PROTOCOL_ROWS
from servers import Server

ALIAS = "claude-sim-sonnet-thinking"


def _sent(sim_http: httpx.Client) -> dict[str, Any]:
    return json.loads(sim_http.get("/sim/requests").json()[-1]["body"])  # type: ignore[no-any-return]


def _chat_body(max_tokens: int | None) -> dict[str, Any]:
    limit = {} if max_tokens is None else {"max_tokens": max_tokens}
    return {"model": ALIAS, "messages": [{"role": "user", "content": "think [[sim:words=3]]"}], **limit}


def _gemini_body(max_tokens: int | None) -> dict[str, Any]:
    limit = {} if max_tokens is None else {"generationConfig": {"maxOutputTokens": max_tokens}}
    return {"contents": [{"role": "user", "parts": [{"text": "think [[sim:words=3]]"}]}], **limit}


def _responses_body(max_tokens: int | None) -> dict[str, Any]:
    limit = {} if max_tokens is None else {"max_output_tokens": max_tokens}
    return {"model": ALIAS, "input": [{"role": "user", "content": "think [[sim:words=3]]"}], **limit}


# the request body asking for `max_tokens`, by client protocol (a new protocol fails until it has one)
BODIES: dict[str, Callable[[int | None], dict[str, Any]]] = {
    "openai_chat": _chat_body, "anthropic_messages": _chat_body, "gemini": _gemini_body,
    "openai_responses": _responses_body}


def _ask(gateway: Server, client: str, max_tokens: int | None) -> httpx.Response:
    row = PROTOCOL_ROWS[client]
    name, _, value = row.key_header.partition(": ")
    return httpx.post(gateway.url + row.chat_path.format(model=ALIAS), json=BODIES[client](max_tokens),
                      headers={name: value.format(key="sk-alice-0001"), "anthropic-version": "2023-06-01"})


@pytest.mark.parametrize("max_tokens, budget", [(8000, 4000), (2000, 1024), (1025, 1024), (100_000, 16_384)])
@pytest.mark.parametrize("client", list(PROTOCOLS))
def test_the_thinking_alias_gives_the_same_budget_to_every_client(gateway: Server, sim_http: httpx.Client,
                                                                  client: str, max_tokens: int, budget: int) -> None:
    """Before: an OpenAI client (converted) got the "medium" effort's 2048 tokens, an Anthropic
    client (fast path) half of max_tokens; now both get max(1024, min(max_tokens // 2, 16384))."""
    sim_http.post("/sim/reset")
    r = _ask(gateway, client, max_tokens)
    assert r.status_code == 200, r.text
    sent = _sent(sim_http)
    assert sent["model"] == "claude-sim-sonnet"
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert sent["max_tokens"] == max_tokens


@pytest.mark.parametrize("client", list(PROTOCOLS))
def test_no_room_to_think_leaves_thinking_off(gateway: Server, sim_http: httpx.Client, client: str) -> None:
    sim_http.post("/sim/reset")
    r = _ask(gateway, client, 1024)
    assert r.status_code == 200, r.text
    sent = _sent(sim_http)
    assert sent["model"] == "claude-sim-sonnet" and "thinking" not in sent
