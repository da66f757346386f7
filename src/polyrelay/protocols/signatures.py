"""Carrying thinking signatures through protocols that cannot tell who minted them.

Inside, a signature travels with its origin ("anthropic" | "gemini"). Each client protocol gets the
signature in a form it accepts and that comes back unchanged on the next turn:
- Chat and Anthropic clients: Anthropic signatures as they are, Gemini ones as "gemini:<sig>";
- Gemini clients (which require standard base64): Gemini signatures as they are, Anthropic ones as
  base64 of "anthropic:<sig>". google-genai decodes what it gets and sends it back in URL-safe
  base64, so what comes back is read as bytes, in either alphabet, padded or not;
- Responses clients: `encrypted_content` of a reasoning item, always prefixed with the origin
  ("anthropic:", "anthropic-redacted:", "gemini:"); an OpenAI Responses upstream's own reasoning
  (origin "openai") travels as "<rs_ id>:<encrypted_content>", since the pair must come back together,
  and reaches Chat and Anthropic clients as "openai:<id>:<content>".
"""

from __future__ import annotations

import base64

from polyrelay.protocols._common import decode_base64

_GEMINI_PREFIX = "gemini:"
_ANTHROPIC_PREFIX = b"anthropic:"


_OPENAI_PREFIX = "openai:"


def to_text_client(signature: str, origin: str | None) -> str:
    """For Chat and Anthropic clients."""
    if origin == "gemini":
        return _GEMINI_PREFIX + signature
    return _OPENAI_PREFIX + signature if origin == "openai" else signature


def from_text_client(value: str) -> tuple[str, str]:
    """(signature, origin) from what a Chat or Anthropic client sent back."""
    if value.startswith(_GEMINI_PREFIX):
        return value[len(_GEMINI_PREFIX):], "gemini"
    if value.startswith(_OPENAI_PREFIX):
        return value[len(_OPENAI_PREFIX):], "openai"
    return value, "anthropic"


_RESPONSES_REDACTED = "anthropic-redacted:"


def to_responses_client(signature: str, origin: str | None, redacted: bool = False) -> str:
    """`encrypted_content` for a Responses client."""
    if origin == "anthropic" and redacted:
        return _RESPONSES_REDACTED + signature
    return f"{origin or 'anthropic'}:{signature}"


def from_responses_client(value: str) -> tuple[str, str, bool]:
    """(signature, origin, redacted) from a reasoning item's `encrypted_content`. Content without one
    of our prefixes is an OpenAI upstream's own (the fast path passed it to the client as it was)."""
    if value.startswith(_RESPONSES_REDACTED):
        return value[len(_RESPONSES_REDACTED):], "anthropic", True
    for origin in ("anthropic", "gemini", "openai"):
        if value.startswith(origin + ":"):
            return value[len(origin) + 1:], origin, False
    return value, "openai", False


def to_gemini_client(signature: str, origin: str | None) -> str:
    if origin == "anthropic":
        return base64.b64encode(_ANTHROPIC_PREFIX + signature.encode()).decode()
    if origin == "openai":
        return base64.b64encode(_OPENAI_PREFIX.encode() + signature.encode()).decode()
    return signature


def from_gemini_client(value: str) -> tuple[str, str]:
    """(signature, origin). A Gemini signature stays as the client sent it: Gemini reads both
    alphabets, and `skip_thought_signature_validator` must reach it letter for letter."""
    raw = decode_base64(value)
    if raw is not None and raw.startswith(_ANTHROPIC_PREFIX):
        return raw[len(_ANTHROPIC_PREFIX):].decode("utf-8", "replace"), "anthropic"
    if raw is not None and raw.startswith(_OPENAI_PREFIX.encode()):
        return raw[len(_OPENAI_PREFIX):].decode("utf-8", "replace"), "openai"
    return value, "gemini"
