"""Upstream error bodies -> the client's error shape, for every client x upstream pair (16).

The golden cases (tests/golden/) only hold successful answers: the simulator's error replies are not
conversions. Here each upstream's documented error body goes through the upstream module's
`parse_error` and the client module's `render_error` (and `render_stream_error`, the same error after
the stream started), and the status, type/code/status string and message are checked.

In the relay a retryable error (429, 5xx) is first tried on the next channel; when every channel
failed, the client gets the last one with its message prefixed "every upstream channel ... failed"
(relay/pipeline.py). A channel's own credentials refused (401/403, Gemini's 400 API_KEY_INVALID) or its
account's billing problem (402, Anthropic `billing_error`) never reach the client as such: they become a
retryable 502 (relay/upstream.py).
"""

from __future__ import annotations

import json
import types
from typing import Any

import pytest

from polyrelay.errors import GatewayError
from polyrelay.protocols.registry import PROTOCOLS

CLIENTS = list(PROTOCOLS)


def module(name: str) -> Any:
    return PROTOCOLS[name]


def _body(value: Any) -> bytes:
    return json.dumps(value).encode()


# (upstream, case, HTTP status, body, neutral kind, status the client gets, message, OpenAI code kept)
UPSTREAM_ERRORS = [
    ("openai_chat", "invalid_request", 400, _body({"error": {
        "message": "This model's maximum context length is 128000 tokens.", "type": "invalid_request_error",
        "param": "messages", "code": "context_length_exceeded"}}),
     "invalid_request", 400, "This model's maximum context length is 128000 tokens.", "context_length_exceeded"),
    ("openai_chat", "rate_limit", 429, _body({"error": {
        "message": "Rate limit reached for requests", "type": "requests", "param": None,
        "code": "rate_limit_exceeded"}}),
     "rate_limit", 429, "Rate limit reached for requests", "rate_limit_exceeded"),
    ("openai_chat", "insufficient_quota", 429, _body({"error": {
        "message": "You exceeded your current quota.", "type": "insufficient_quota", "param": None,
        "code": "insufficient_quota"}}),
     "insufficient_quota", 429, "You exceeded your current quota.", "insufficient_quota"),
    ("openai_chat", "overloaded", 503, _body({"error": {
        "message": "The engine is currently overloaded, please try again later", "type": "server_error",
        "param": None, "code": None}}),
     "overloaded", 503, "The engine is currently overloaded, please try again later", None),
    ("openai_chat", "server_error", 500, _body({"error": {
        "message": "The server had an error while processing your request.", "type": "server_error",
        "param": None, "code": None}}),
     "upstream", 500, "The server had an error while processing your request.", None),
    ("openai_chat", "not_json", 502, b"<html>502 Bad Gateway</html>",
     "upstream", 502, "<html>502 Bad Gateway</html>", None),

    ("anthropic_messages", "invalid_request", 400, _body({"type": "error", "error": {
        "type": "invalid_request_error", "message": "messages: text content blocks must be non-empty"},
        "request_id": "req_1"}),
     "invalid_request", 400, "messages: text content blocks must be non-empty", None),
    ("anthropic_messages", "rate_limit", 429, _body({"type": "error", "error": {
        "type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit"}}),
     "rate_limit", 429, "Number of request tokens has exceeded your per-minute rate limit", None),
    ("anthropic_messages", "overloaded", 529, _body({"type": "error", "error": {
        "type": "overloaded_error", "message": "Overloaded"}}),
     "overloaded", 503, "Overloaded", None),   # 529 is Anthropic's own: every client gets 503
    ("anthropic_messages", "api_error", 500, _body({"type": "error", "error": {
        "type": "api_error", "message": "Internal server error"}}),
     "upstream", 500, "Internal server error", None),
    ("anthropic_messages", "timeout", 504, _body({"type": "error", "error": {
        "type": "timeout_error", "message": "Request timed out"}}),
     "timeout", 504, "Request timed out", None),
    ("anthropic_messages", "not_json", 502, b"<html>502 Bad Gateway</html>",
     "upstream", 502, "<html>502 Bad Gateway</html>", None),

    ("gemini", "invalid_request", 400, _body({"error": {
        "code": 400, "message": "* GenerateContentRequest.contents: contents is not specified",
        "status": "INVALID_ARGUMENT"}}),
     "invalid_request", 400, "* GenerateContentRequest.contents: contents is not specified", None),
    ("gemini", "rate_limit", 429, _body({"error": {
        "code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}}),
     "rate_limit", 429, "Resource has been exhausted (e.g. check quota).", None),
    ("gemini", "overloaded", 503, _body({"error": {
        "code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}),
     "overloaded", 503, "The model is overloaded. Please try again later.", None),
    ("gemini", "internal", 500, _body({"error": {
        "code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}}),
     "upstream", 500, "An internal error has occurred.", None),
    ("gemini", "timeout", 504, _body({"error": {
        "code": 504, "message": "Deadline expired before operation could complete.", "status": "DEADLINE_EXCEEDED"}}),
     "timeout", 504, "Deadline expired before operation could complete.", None),
    ("gemini", "stream_array", 429, _body([{"error": {    # streamGenerateContent without alt=sse: a JSON array
        "code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}]),
     "rate_limit", 429, "Quota exceeded", None),
    ("gemini", "not_json", 502, b"<html>502 Bad Gateway</html>",
     "upstream", 502, "<html>502 Bad Gateway</html>", None),
]

# What each client protocol calls a neutral kind (protocols.md §1: OpenAI `type`/`code`, Anthropic
# `error.type`, Gemini `error.status`).
OPENAI_TYPE = {"invalid_request": "invalid_request_error", "rate_limit": "rate_limit_error",
               "insufficient_quota": "insufficient_quota", "overloaded": "server_error",
               "timeout": "timeout_error", "upstream": "upstream_error"}
OPENAI_CODE = {"rate_limit": "rate_limit_exceeded", "insufficient_quota": "insufficient_quota"}
ANTHROPIC_TYPE = {"invalid_request": "invalid_request_error", "rate_limit": "rate_limit_error",
                  "insufficient_quota": "rate_limit_error", "overloaded": "overloaded_error",
                  "timeout": "timeout_error", "upstream": "api_error"}
GEMINI_STATUS = {"invalid_request": "INVALID_ARGUMENT", "rate_limit": "RESOURCE_EXHAUSTED",
                 "insufficient_quota": "RESOURCE_EXHAUSTED", "overloaded": "UNAVAILABLE",
                 "timeout": "DEADLINE_EXCEEDED", "upstream": "UNAVAILABLE"}

# An OpenAI Responses upstream answers errors in the Chat envelope, with its own messages and codes
# (the replayed-items errors of a stateless client, the 16-token floor, the per-minute token limit).
UPSTREAM_ERRORS += [
    ("openai_responses", "encrypted_content", 400, _body({"error": {
        "message": "The encrypted content for item rs_68af could not be verified.", "type": "invalid_request_error",
        "param": None, "code": "invalid_encrypted_content"}}),
     "invalid_request", 400, "The encrypted content for item rs_68af could not be verified.",
     "invalid_encrypted_content"),
    ("openai_responses", "item_not_persisted", 400, _body({"error": {
        "message": "Item with id 'rs_68af' not found. Items are not persisted when `store` is set to false.",
        "type": "invalid_request_error", "param": "input", "code": None}}),
     "invalid_request", 400, "Item with id 'rs_68af' not found. Items are not persisted when `store` is set to false.",
     None),
    ("openai_responses", "below_floor", 400, _body({"error": {
        "message": "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got 8.",
        "type": "invalid_request_error", "param": "max_output_tokens", "code": "integer_below_min_value"}}),
     "invalid_request", 400,
     "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got 8.",
     "integer_below_min_value"),
    ("openai_responses", "rate_limit", 429, _body({"error": {
        "message": "Rate limit reached for gpt-5 on tokens per min (TPM): Limit 30000, Used 29000, Requested 2000.",
        "type": "tokens", "param": None, "code": "rate_limit_exceeded"}}),
     "rate_limit", 429,
     "Rate limit reached for gpt-5 on tokens per min (TPM): Limit 30000, Used 29000, Requested 2000.",
     "rate_limit_exceeded"),
    ("openai_responses", "insufficient_quota", 429, _body({"error": {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}}),
     "insufficient_quota", 429, "You exceeded your current quota, please check your plan and billing details.",
     "insufficient_quota"),
    ("openai_responses", "overloaded", 503, _body({"error": {
        "message": "The server is overloaded or not ready yet.", "type": "server_error", "param": None,
        "code": None}}),
     "overloaded", 503, "The server is overloaded or not ready yet.", None),
    ("openai_responses", "server_error", 500, _body({"error": {
        "message": "An error occurred while processing your request. You can retry your request.",
        "type": "server_error", "param": None, "code": "server_error"}}),
     "upstream", 500, "An error occurred while processing your request. You can retry your request.",
     "server_error"),
    ("openai_responses", "not_json", 502, b"<html>502 Bad Gateway</html>",
     "upstream", 502, "<html>502 Bad Gateway</html>", None),
]
CASES = [(client, *case) for client in CLIENTS for case in UPSTREAM_ERRORS]


def _check_client_shape(client: str, payload: dict[str, Any], kind: str, status: int, message: str,
                        code: str | None, in_stream: bool = False) -> None:
    if client == "openai_responses" and in_stream:   # an `error` event: {type, code, message, param}
        assert payload["type"] == "error" and payload["message"] == message
        assert payload["code"] == (code or OPENAI_CODE.get(kind) or OPENAI_TYPE[kind])
    elif client in ("openai_chat", "openai_responses"):
        assert set(payload) == {"error"}
        assert payload["error"]["type"] == OPENAI_TYPE[kind]
        assert payload["error"]["code"] == (code or OPENAI_CODE.get(kind))
        assert payload["error"]["message"] == message
    elif client == "anthropic_messages":
        assert payload["type"] == "error"
        assert payload["error"] == {"type": ANTHROPIC_TYPE[kind], "message": message}
    elif client == "gemini":   # an upstream 500 is INTERNAL, not UNAVAILABLE (which says "try again later", like 503)
        gemini_status = "INTERNAL" if status == 500 else GEMINI_STATUS[kind]
        assert payload == {"error": {"code": status, "message": message, "status": gemini_status}}
    else:
        raise LookupError(f"no error shape for the {client!r} client: add it to _check_client_shape")


def test_every_protocol_has_upstream_error_cases() -> None:
    assert {case[0] for case in UPSTREAM_ERRORS} == {b[0] for b in BILLING_ERRORS} == set(PROTOCOLS)


@pytest.mark.parametrize(("client", "upstream", "case", "status", "body", "kind", "client_status", "message", "code"),
                         CASES, ids=[f"{c[1]}->{c[0]}/{c[2]}" for c in CASES])
def test_upstream_error_reaches_the_client_in_its_own_shape(
        client: str, upstream: str, case: str, status: int, body: bytes, kind: str, client_status: int,
        message: str, code: str | None) -> None:
    err = module(upstream).parse_error(status, body)
    assert (err.status, err.kind, err.message) == (client_status, kind, message)
    assert err.retryable == (status == 429 or status >= 500)
    out_status, out = module(client).render_error(err)
    assert out_status == client_status
    _check_client_shape(client, json.loads(out), kind, client_status, message, code)
    # the same error after the stream started: one SSE event in the client's dialect
    event = module(client).render_stream_error(err)
    lines = event.decode().strip().split("\n")
    if client in ("anthropic_messages", "openai_responses"):
        assert lines[0] == "event: error"
    assert lines[-1].startswith("data: ")
    _check_client_shape(client, json.loads(lines[-1][6:]), kind, client_status, message, code, in_stream=True)


def test_gemini_bad_key_is_the_channel_s_fault_not_the_client_s() -> None:
    """Gemini answers a bad key with 400 INVALID_ARGUMENT + API_KEY_INVALID (protocols.md §6 #23)."""
    body = _body({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                            "status": "INVALID_ARGUMENT", "details": [
                                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}})
    assert module("gemini").parse_error(400, body).kind == "authentication"


# ---- n: carried where the upstream has it, a clear 400 where it has not -----------------------

N_REQUESTS = {
    "openai_chat": {"model": "m", "n": 2, "messages": [{"role": "user", "content": "Hi"}]},
    "gemini": {"generationConfig": {"candidateCount": 2}, "contents": [{"role": "user", "parts": [{"text": "Hi"}]}]},
}   # Anthropic Messages has no n


@pytest.mark.parametrize("client", sorted(N_REQUESTS))
def test_n_is_carried_to_openai_and_gemini(client: str) -> None:
    req = module(client).parse_request(_body(N_REQUESTS[client]))
    assert json.loads(module("openai_chat").render_request(req, "u")[0])["n"] == 2
    assert json.loads(module("gemini").render_request(req, "u")[0])["generationConfig"]["candidateCount"] == 2


@pytest.mark.parametrize("client", sorted(N_REQUESTS))
def test_n_above_one_to_anthropic_is_a_clear_400_in_the_client_s_shape(client: str) -> None:
    req = module(client).parse_request(_body(N_REQUESTS[client]))
    with pytest.raises(GatewayError) as caught:
        module("anthropic_messages").render_request(req, "u")[0]
    err = caught.value
    assert (err.status, err.kind, err.param) == (400, "invalid_request", "n")
    status, out = module(client).render_error(err)
    payload = json.loads(out)
    assert status == 400
    if client == "openai_chat":
        assert payload["error"]["type"] == "invalid_request_error" and payload["error"]["param"] == "n"
    else:
        assert payload["error"]["status"] == "INVALID_ARGUMENT" and "n > 1" in payload["error"]["message"]


# ---- 402: the channel's account cannot pay ------------------------------------------------------

BILLING_ERRORS = [
    ("anthropic_messages", _body({"type": "error", "error": {
        "type": "billing_error", "message": "Your credit balance is too low to access the Anthropic API."}})),
    ("openai_chat", _body({"error": {"message": "Insufficient credits", "type": None, "code": 402}})),
    ("gemini", _body({"error": {"code": 402, "message": "Billing required", "status": "FAILED_PRECONDITION"}})),
    ("openai_responses", _body({"error": {"message": "Insufficient credits", "type": "insufficient_quota",
                                          "param": None, "code": "insufficient_quota"}})),
]


@pytest.mark.parametrize("upstream, body", BILLING_ERRORS, ids=[b[0] for b in BILLING_ERRORS])
def test_upstream_402_is_a_quota_error_in_each_client_s_shape(upstream: str, body: bytes) -> None:
    err = module(upstream).parse_error(402, body)
    assert (err.status, err.kind) == (402, "insufficient_quota")
    openai = json.loads(module("openai_chat").render_error(err)[1])["error"]
    assert openai["type"] == "insufficient_quota" and openai["code"] in ("insufficient_quota", "402")
    assert json.loads(module("openai_responses").render_error(err)[1])["error"] == openai
    assert json.loads(module("anthropic_messages").render_error(err)[1])["error"]["type"] == "billing_error"
    assert json.loads(module("gemini").render_error(err)[1])["error"]["status"] == "RESOURCE_EXHAUSTED"


class _FakeResponse:
    def __init__(self, status: int, body: bytes) -> None:
        self.status, self._body = status, body

    async def read(self) -> bytes:
        return self._body

    async def read_head(self, size: int = 65536) -> bytes:   # error answers: only their head is read
        return self._body[:size]

    def header(self, name: bytes) -> bytes | None:
        return None


class _FakeClient:
    def __init__(self, status: int, body: bytes) -> None:
        self.response = _FakeResponse(status, body)

    async def post(self, url: str, headers: dict[str, str], body: bytes, timeouts: Any, **_: Any) -> _FakeResponse:
        return self.response


class _FakeChannel:
    name, timeouts, stream_timeouts, signs = "claude-main", None, None, False
    config = types.SimpleNamespace(proxy=None)

    def headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key}

    def next_key(self) -> str:
        return "sk-ant-secret"

    def url(self, operation: str, model: str, stream: bool) -> str:
        return "http://upstream.invalid/v1/messages"

    def scrub(self, text: str) -> str:
        return text.replace("sk-ant-secret", "***")


@pytest.mark.parametrize("upstream, body", BILLING_ERRORS, ids=[b[0] for b in BILLING_ERRORS])
async def test_upstream_402_is_the_channel_s_problem_like_refused_credentials(upstream: str, body: bytes) -> None:
    """Like a 401/403 of the channel's key: another channel is tried (retryable) and the client, if every
    channel fails, gets a 502 that names the channel's billing, not a 4xx that blames the client."""
    from polyrelay.upstream.call import open_upstream

    with pytest.raises(GatewayError) as caught:
        await open_upstream(_FakeClient(402, body), _FakeChannel(),  # type: ignore[arg-type]
                            "claude-sonnet-4-5", b"{}", False, module(upstream).parse_error)
    err = caught.value
    assert (err.status, err.kind, err.retryable) == (502, "upstream", True)
    assert "claude-main" in err.message and "billing" in err.message and "402" in err.message
    for client in CLIENTS:
        status, out = module(client).render_error(err)
        assert status == 502 and "billing" in out.decode()
