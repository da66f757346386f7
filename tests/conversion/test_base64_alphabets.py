"""google-genai 3.x sends bytes (inlineData.data, thoughtSignature) in URL-safe base64; OpenAI data URLs
and Anthropic `source.data` take the standard alphabet only. The gateway reads both on the Gemini
surface and emits standard base64 when converting; the Gemini fast path forwards the bytes as sent.
Test bytes are chosen so their base64 holds '+' and '/' (b'\\xfb\\xff\\xbf' -> '+/+/')."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polyrelay.errors import GatewayError
from polyrelay.protocols import anthropic_messages, gemini, openai_chat, signatures
from polyrelay.protocols._common import decode_base64, standard_base64
from sdk_clients import PNG_1X1

HARD = b"\xfb\xff\xbf" * 2 + b"\xfb"  # standard: "+/+/+/+/+w==", URL-safe: "-_-_-_-_-w=="
STANDARD = base64.b64encode(PNG_1X1).decode()
URLSAFE = base64.urlsafe_b64encode(PNG_1X1).decode()


def test_the_test_bytes_differ_between_the_alphabets() -> None:
    assert base64.b64encode(HARD).decode() == "+/+/+/+/+w=="
    assert "-" in URLSAFE and "_" in URLSAFE and "+" in STANDARD and "/" in STANDARD


@given(st.binary(max_size=64), st.booleans(), st.booleans())
def test_either_alphabet_padded_or_not_gives_standard_base64(data: bytes, urlsafe: bool, strip: bool) -> None:
    sent = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()
    if strip:
        sent = sent.rstrip("=")
    assert standard_base64(sent) == base64.b64encode(data).decode()
    assert decode_base64(sent) == data


def test_standard_base64_is_returned_as_it_is() -> None:
    assert standard_base64(STANDARD) is STANDARD


def _gemini_image_request(data: str) -> bytes:
    return json.dumps({"contents": [{"role": "user", "parts": [
        {"text": "What is this?"}, {"inline_data": {"mime_type": "image/png", "data": data}}]}]}).encode()


@pytest.mark.parametrize("sent", [URLSAFE, URLSAFE.rstrip("="), STANDARD], ids=["urlsafe", "unpadded", "standard"])
def test_gemini_image_converts_to_standard_base64_for_anthropic_and_openai(sent: str) -> None:
    req = gemini.parse_request(_gemini_image_request(sent))
    up = json.loads(anthropic_messages.render_request(req, "claude")[0])
    assert up["messages"][0]["content"][1]["source"]["data"] == STANDARD
    up = json.loads(openai_chat.render_request(req, "gpt")[0])
    assert up["messages"][0]["content"][1]["image_url"]["url"] == "data:image/png;base64," + STANDARD


def test_gemini_data_of_impossible_length_is_a_400() -> None:
    with pytest.raises(GatewayError) as info:
        gemini.parse_request(_gemini_image_request("-_-_-"))
    assert info.value.status == 400 and "base64" in info.value.message


@given(st.text(min_size=1, max_size=80), st.booleans())
def test_a_signature_comes_back_from_a_gemini_client_in_the_other_alphabet(signature: str, redacted: bool) -> None:
    """google-genai decodes the signature it gets and sends it back URL-safe, unpadded or not."""
    sent = gemini.client_signature(signature, "anthropic", redacted)
    back = base64.urlsafe_b64encode(base64.b64decode(sent)).decode()
    assert gemini._signature_from_client(back) == (signature, "anthropic", redacted)
    assert gemini._signature_from_client(back.rstrip("="))[1:] == ("anthropic", redacted)


def test_a_gemini_signature_and_the_skip_marker_go_back_to_gemini_as_sent() -> None:
    urlsafe = base64.urlsafe_b64encode(HARD).decode()
    assert signatures.from_gemini_client(urlsafe) == (urlsafe, "gemini")
    assert signatures.from_gemini_client(gemini.SKIP_SIGNATURE) == (gemini.SKIP_SIGNATURE, "gemini")


def test_a_long_openai_user_goes_to_anthropic_within_its_limit() -> None:
    req = openai_chat.parse_request(json.dumps({"model": "m", "user": "u" * 300,
                                                "messages": [{"role": "user", "content": "Hi"}]}).encode())
    sent = json.loads(anthropic_messages.render_request(req, "claude")[0])["metadata"]["user_id"]
    assert sent == hashlib.sha256(b"u" * 300).hexdigest()
