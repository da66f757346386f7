"""What a simulated model answers, whatever the protocol: text, tool calls or JSON for a schema."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import msgspec

from polyrelay.sim.fake_json import value_for
from polyrelay.sim.script import Script, reply_words

_SECRET = b"polyrelay-simulator"
THINKING_TEXT = "Let me think about this step by step."


class Plan(msgspec.Struct):
    text: str | None = None
    calls: list[tuple[str, dict[str, Any]]] = []


def plan(script: Script, tools: list[tuple[str, Any]], choice: str, last_is_result: bool, result_text: str,
         user_text: str, schema: Any = None, json_mode: bool = False) -> Plan:
    """`tools` = (name, JSON schema); `choice` = "auto" | "none" | "any" | a tool's name."""
    if tools and choice != "none" and not last_is_result and not script.notool:
        named = [t for t in tools if t[0] == choice]
        chosen = named or (tools[:2] if "both" in user_text else tools[:1])
        return Plan(calls=[(name, value_for(params) if isinstance(params, dict) else {}) for name, params in chosen])
    if schema is not None:
        return Plan(text=msgspec.json.encode(value_for(schema)).decode())
    if json_mode:
        return Plan(text='{"answer": "sample"}')
    if last_is_result:
        return Plan(text="The tool said: " + result_text[:200])
    return Plan(text="".join(reply_words(script.chunks or script.words)))


def sign(text: str) -> str:
    """A signature the simulator can check when a client hands thinking back."""
    return base64.b64encode(hmac.new(_SECRET, text.encode(), hashlib.sha256).digest()).decode()


def verify(text: str, signature: Any) -> bool:
    return isinstance(signature, str) and hmac.compare_digest(signature, sign(text))
