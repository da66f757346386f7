"""The real SDKs through the gateway: google-genai sends bytes (inlineData.data, thoughtSignature) in
URL-safe base64 and each upstream gets the alphabet it takes; Claude Code's long metadata.user_id
reaches OpenAI within its limit. (The conversions themselves: tests/conversion/test_base64_alphabets.py.)"""

from __future__ import annotations

import base64
import hashlib
import json

import anthropic
import httpx
import pytest
from test_chat_relay import last_upstream_request

from sdk_clients import CLIENTS, PNG_1X1
from servers import Server

STANDARD = base64.b64encode(PNG_1X1).decode()
URLSAFE = base64.urlsafe_b64encode(PNG_1X1).decode()


# ---- end to end: the real google-genai SDK, through the gateway, to each kind of channel -------------


def _inline_data(sent: dict) -> str:
    if "messages" in sent and "contents" not in sent:
        content = sent["messages"][-1]["content"]
        image = next(p for p in content if p.get("type") in ("image", "image_url"))
        return image["source"]["data"] if image["type"] == "image" else image["image_url"]["url"].split(",", 1)[1]
    part = next(p for p in sent["contents"][-1]["parts"] if "inlineData" in p or "inline_data" in p)
    return (part.get("inlineData") or part.get("inline_data"))["data"]


@pytest.mark.parametrize("model", ["claude-sim-sonnet", "gpt-4o-mini"])
def test_google_genai_image_reaches_anthropic_and_openai_in_standard_base64(gateway: Server, sim_http: httpx.Client,
                                                                            model: str) -> None:
    """The simulator refuses URL-safe base64 as Anthropic (`invalid base64`) and OpenAI (`Invalid image URL`) do."""
    answer = CLIENTS["gemini"](gateway.url, "sk-alice-0001").image(model)
    assert answer.text and answer.finish == "stop"
    assert _inline_data(last_upstream_request(sim_http)) == STANDARD


def test_google_genai_image_goes_to_gemini_unchanged(gateway: Server, sim_http: httpx.Client) -> None:
    """Same protocol: the fast path forwards the body as the SDK wrote it (Gemini reads both alphabets)."""
    answer = CLIENTS["gemini"](gateway.url, "sk-alice-0001").image("gemini-2.5-flash")
    assert answer.text and answer.finish == "stop"
    assert _inline_data(last_upstream_request(sim_http)) == URLSAFE


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_google_genai_sends_gemini_3_signatures_back_url_safe_through_the_fast_path(
        gateway: Server, sim_http: httpx.Client, stream: bool) -> None:
    """The simulator's signatures are binary ('+' and '/' in base64), as Gemini's are; the SDK sends them
    back URL-safe and the simulator, like Gemini, checks them as bytes."""
    first, second = CLIENTS["gemini"](gateway.url, "sk-alice-0001").thinking_round_trip("gemini-3-pro-preview", stream)
    assert first.tool_calls and "sunny, 21C" in second.text
    sent = last_upstream_request(sim_http)
    signed = [p for c in sent["contents"] for p in c["parts"]
              if p.get("thoughtSignature") or p.get("thought_signature")]
    value = signed[0].get("thoughtSignature") or signed[0].get("thought_signature")
    assert "-" in value or "_" in value, value


# ---- user ids: Claude Code's metadata.user_id is longer than OpenAI's `user` may be ------------------

CLAUDE_CODE_USER_ID = json.dumps({"device_id": "5f" * 32, "account_uuid": "0b6c2a47-8d3e-4f15-9a7b-2c1d0e9f8a6b",
                                  "session_id": "e3b0c442-98fc-4c14-9afb-f4c8996fb924"}, separators=(",", ":"))


def test_claude_code_user_id_goes_to_openai_as_a_stable_hash(gateway: Server, sim_http: httpx.Client) -> None:
    """The simulator refuses a `user` over 64 characters, as OpenAI does (`string_above_max_length`)."""
    assert len(CLAUDE_CODE_USER_ID) > 150
    sdk = anthropic.Anthropic(base_url=gateway.url, api_key="sk-alice-0001", max_retries=0)
    sent = []
    for _ in range(2):
        reply = sdk.messages.create(model="gpt-4o-mini", max_tokens=64, metadata={"user_id": CLAUDE_CODE_USER_ID},
                                    messages=[{"role": "user", "content": "Hi"}])
        assert reply.content[0].text
        sent.append(last_upstream_request(sim_http)["user"])
    assert sent[0] == sent[1] == hashlib.sha256(CLAUDE_CODE_USER_ID.encode()).hexdigest()


def test_a_short_user_id_goes_to_openai_as_it_is(gateway: Server, sim_http: httpx.Client) -> None:
    sdk = anthropic.Anthropic(base_url=gateway.url, api_key="sk-alice-0001", max_retries=0)
    sdk.messages.create(model="gpt-4o-mini", max_tokens=64, metadata={"user_id": "user-42"},
                        messages=[{"role": "user", "content": "Hi"}])
    assert last_upstream_request(sim_http)["user"] == "user-42"
