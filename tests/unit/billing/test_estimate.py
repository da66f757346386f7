"""Token estimates from raw bodies: inline media of every protocol is not counted as text."""

from __future__ import annotations

import base64
import json

import pytest

from polyrelay.billing.estimate import estimate_prompt_tokens, estimated_usage
from polyrelay.protocols.registry import PROTOCOLS

PAYLOAD = base64.b64encode(bytes(range(256)) * 600).decode()   # ~200 KB of base64


def _bodies(payload: str) -> dict[str, bytes]:
    """A text and an inline image, by protocol name (a new protocol fails here until it has its body)."""
    return {
        "openai_chat": json.dumps({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": 'say "hi" \\ there'},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + payload}}]}]}).encode(),
        "anthropic_messages": json.dumps({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "say hi there"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": payload}}]}]},
            separators=(",", ":")).encode(),
        "gemini": json.dumps({"contents": [{"role": "user", "parts": [
            {"text": "say hi there"}, {"inlineData": {"mimeType": "image/png", "data": payload}}]}]}).encode(),
        "openai_responses": json.dumps({"model": "m", "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "say hi there"},
            {"type": "input_image", "image_url": "data:image/png;base64," + payload}]}]}).encode(),
    }


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
@pytest.mark.parametrize("size", ["small", "large"])   # the two code paths: below and above 64 KB
def test_inline_media_is_an_allowance_not_text(protocol: str, size: str) -> None:
    payload = PAYLOAD if size == "large" else PAYLOAD[:20_000]
    body = _bodies(payload)[protocol]
    assert (len(body) > 1 << 16) == (size == "large")
    reserved = estimate_prompt_tokens(body)
    assert 1600 <= reserved < 1600 + 200, reserved
    billed = estimated_usage(body, 40)
    assert 765 <= billed.input_tokens < 765 + 200 and billed.output_tokens == 10 and billed.estimated


def test_long_text_is_still_text() -> None:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": 'a "quoted" word ' * 10_000}]}).encode()
    assert estimate_prompt_tokens(body) >= len(body) // 3 - 10


@pytest.mark.parametrize("size", [3_000, 75_000])   # both code paths
def test_text_behind_a_media_marker_is_still_text(size: int) -> None:
    prose = "hello world " * size
    for body in (json.dumps({"messages": [{"role": "user", "content": "data:image/png;base64," + prose}]}).encode(),
                 json.dumps({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": prose}}]}]})
                 .encode()):
        assert estimate_prompt_tokens(body) >= len(prose) // 3
        assert estimated_usage(body, 0).input_tokens >= len(prose) // 4


def test_pathological_bodies_are_estimated_quickly_and_generously() -> None:
    import time

    for body in (json.dumps({"messages": [{"role": "user", "content": ["a"] * 2_000_000}]}).encode(),
                 json.dumps({"messages": [{"role": "user", "content": '"' * 2_000_000}]}).encode()):
        started = time.process_time()
        tokens = estimate_prompt_tokens(body)
        # not a performance figure: a guard with a 100x margin against walking millions of quotes
        assert time.process_time() - started < 2.0, "the walk must stop early"
        assert tokens >= len(body) // 3 - 10


def test_base64_in_a_text_field_is_text() -> None:
    junk = "data:image/png;base64," + PAYLOAD   # base64 the upstream reads as text, not as an image
    body = json.dumps({"messages": [{"role": "user", "content": [{"type": "text", "text": junk}]}]}).encode()
    assert estimate_prompt_tokens(body) >= len(junk) // 3
