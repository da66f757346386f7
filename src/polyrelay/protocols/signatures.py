"""Carrying thinking signatures through protocols that cannot tell who minted them.

Inside, a signature travels with its origin ("anthropic" | "gemini"). Each client protocol gets the
signature in a form it accepts and that comes back unchanged on the next turn:
- Chat and Anthropic clients: Anthropic signatures as they are, Gemini ones as "gemini:<sig>";
- Gemini clients (which require standard base64): Gemini signatures as they are, Anthropic ones as
  base64 of "anthropic:<sig>". google-genai decodes what it gets and sends it back in URL-safe
  base64, so what comes back is read as bytes, in either alphabet, padded or not.
"""

from __future__ import annotations

import base64

from polyrelay.protocols._common import decode_base64

_GEMINI_PREFIX = "gemini:"
_ANTHROPIC_PREFIX = b"anthropic:"


def to_text_client(signature: str, origin: str | None) -> str:
    """For Chat and Anthropic clients."""
    return _GEMINI_PREFIX + signature if origin == "gemini" else signature


def from_text_client(value: str) -> tuple[str, str]:
    """(signature, origin) from what a Chat or Anthropic client sent back."""
    if value.startswith(_GEMINI_PREFIX):
        return value[len(_GEMINI_PREFIX):], "gemini"
    return value, "anthropic"


def to_gemini_client(signature: str, origin: str | None) -> str:
    if origin == "anthropic":
        return base64.b64encode(_ANTHROPIC_PREFIX + signature.encode()).decode()
    return signature


def from_gemini_client(value: str) -> tuple[str, str]:
    """(signature, origin). A Gemini signature stays as the client sent it: Gemini reads both
    alphabets, and `skip_thought_signature_validator` must reach it letter for letter."""
    raw = decode_base64(value)
    if raw is not None and raw.startswith(_ANTHROPIC_PREFIX):
        return raw[len(_ANTHROPIC_PREFIX):].decode("utf-8", "replace"), "anthropic"
    return value, "gemini"
