"""Simulated OpenAI Chat Completions upstream: non-stream, SSE with usage, tool calls, errors. Asked for
`reasoning_effort` (other than none), it answers with its reasoning in `reasoning_content` first, as
DeepSeek-style OpenAI-compatible reasoning models do."""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

import msgspec

from polyrelay.sim.plan import THINKING_TEXT, plan
from polyrelay.sim.replies import SimReply, SimStream
from polyrelay.sim.script import Script, echo_key, fit, split_words
from polyrelay.tokens import estimate_text_tokens

_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
                429: "rate_limit_exceeded", 500: "server_error", 503: "server_error"}


def error_reply(status: int, message: str) -> SimReply:
    code = {401: "invalid_api_key", 429: "rate_limit_exceeded", 404: "model_not_found"}.get(status)
    return SimReply(status, msgspec.json.encode({"error": {
        "message": message, "type": _ERROR_TYPES.get(status, "server_error"), "param": None, "code": code}}))


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


MAX_USER_CHARS = 64


def _standard_base64(data: Any) -> bool:
    """Like OpenAI: the standard alphabet, padded; URL-safe base64 is refused."""
    try:
        base64.b64decode(data, validate=True)
        return isinstance(data, str)
    except (binascii.Error, ValueError, TypeError):
        return False


def _bad_media(part: Any, where: str) -> str | None:
    if not isinstance(part, dict):
        return None
    kind = part.get("type")
    if kind in ("image_url", "video_url", "file"):
        url = (part.get(kind) or {}).get("file_data" if kind == "file" else "url")
        if isinstance(url, str) and url.startswith("data:"):
            head, _, data = url.partition(",")
            if not head.endswith(";base64") or not _standard_base64(data):
                return f"Invalid image URL: '{where}.{kind}'. Expected a base64-encoded data URL"
    elif kind == "input_audio" and not _standard_base64((part.get("input_audio") or {}).get("data")):
        return f"Invalid '{where}.input_audio.data': expected base64-encoded audio data"
    return None


def _validate(req: Any) -> str | None:
    if not isinstance(req, dict):
        return "request body must be a JSON object"
    if not isinstance(req.get("model"), str) or not req["model"]:
        return "you must provide a model parameter"
    if req["model"].startswith(("gpt-3.5-turbo-instruct", "davinci-002", "babbage-002")):   # like OpenAI
        return ("This is not a chat model and thus not supported in the v1/chat/completions endpoint. "
                "Did you mean to use v1/completions?")
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant", "tool"):
            return f"messages[{i}].role is invalid"
        if m["role"] == "tool" and not m.get("tool_call_id"):
            return f"messages[{i}].tool_call_id is required for tool messages"
        if m["role"] == "assistant" and m.get("content") is None and not m.get("tool_calls"):
            return f"messages[{i}]: assistant content or tool_calls is required"
        for call in m.get("tool_calls") or []:
            if len(str(call.get("id", ""))) > 40:
                return f"messages[{i}].tool_calls.id: string_above_max_length"
        if isinstance(m.get("content"), list):
            for j, part in enumerate(m["content"]):
                problem = _bad_media(part, f"messages[{i}].content[{j}]")
                if problem:
                    return problem
    n = req.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 128):
        return f"Invalid 'n': expected an integer between 1 and 128, got {str(n)[:40]}"
    user = req.get("user")
    if isinstance(user, str) and len(user) > MAX_USER_CHARS:
        return (f"Invalid 'user': string too long. Expected a string with maximum length {MAX_USER_CHARS}, "
                f"but got a string with length {len(user)} instead.")
    for t in req.get("tools") or []:
        if t.get("type") != "function" or not isinstance(t.get("function"), dict):
            return "tools[].type must be 'function' with a 'function' object"
    return None


def _usage(req: dict[str, Any], completion: int, reasoning: int, script: Script) -> dict[str, Any]:
    """`completion` excludes, `reasoning` includes the `reasoning=N` directive; both count in completion_tokens."""
    prompt = sum(estimate_text_tokens(_text_of(m.get("content"))) + 4 for m in req["messages"]) + 3
    prompt += 1000 * str(req["messages"]).count("image_url")
    reasoning += script.reasoning
    completion += reasoning
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": min(script.cached, prompt), "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


def _plan(req: dict[str, Any], script: Script) -> tuple[str | None, list[dict[str, Any]]]:
    """The reply: text, or tool calls to make."""
    tools = [(t["function"]["name"], t["function"].get("parameters")) for t in req.get("tools") or []]
    choice = req.get("tool_choice", "auto")
    if isinstance(choice, dict):
        choice = (choice.get("function") or {}).get("name", "auto")
    elif choice == "required":
        choice = "any"
    last = req["messages"][-1]
    fmt = req.get("response_format") or {}
    answer = plan(script, tools, str(choice), last.get("role") == "tool", _text_of(last.get("content")),
                  _text_of(last.get("content")),
                  schema=(fmt.get("json_schema") or {}).get("schema", {}) if fmt.get("type") == "json_schema" else None,
                  json_mode=fmt.get("type") == "json_object")
    calls = [{"id": f"call_sim{i}{int(time.time() * 1000) % 100000}", "type": "function",
              "function": {"name": name, "arguments": msgspec.json.encode(args).decode()}}
             for i, (name, args) in enumerate(answer.calls)]
    return answer.text, calls


def _within(limit: int, text: str | None, calls: list[dict[str, Any]], thinking: str | None,
            script: Script) -> tuple[str | None, list[dict[str, Any]], str | None, Script, bool]:
    """The answer cut to `limit` output tokens (reasoning first, then text; tool calls do not fit a cut
    answer), and whether it was cut."""
    call_tokens = sum(len(c["function"]["arguments"]) // 4 + 1 for c in calls)
    thought = estimate_text_tokens(thinking or "")
    if thought + script.reasoning + call_tokens + estimate_text_tokens(text or "") <= limit:
        return text, calls, thinking, script, False
    if thought > limit:
        thinking, thought = None, 0
    script = msgspec.structs.replace(script, reasoning=min(script.reasoning, limit - thought))
    text, _ = fit(text or "", limit - thought - script.reasoning, estimate_text_tokens)
    return text, [], thinking, script, True


def handle(body: bytes, script: Script) -> SimReply | SimStream:
    try:
        req = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return error_reply(400, "We could not parse the JSON body of your request.")
    problem = _validate(req)
    if problem:
        return error_reply(400, problem)
    if script.status >= 400:
        if script.status == 401:  # like OpenAI, echo the key: the gateway must not pass it on
            return error_reply(401, f"Incorrect API key provided: {script.api_key}.")
        if script.echo_key:   # upstreams that echo the key in other shapes (the gateway must scrub)
            return error_reply(script.status, f"simulated error {script.status}: {echo_key(script)}")
        return error_reply(script.status, f"simulated error {script.status}")
    limit = req.get("max_completion_tokens", req.get("max_tokens"))
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        return error_reply(400, "Invalid 'max_completion_tokens': integer below minimum value. Expected a value "
                           ">= 1.")
    text, calls = _plan(req, script)
    rid = f"chatcmpl-sim{time.time_ns() % 10**12}"
    created = int(time.time())
    model = req["model"]
    n = int(req.get("n") or 1)
    thinking = THINKING_TEXT if req.get("reasoning_effort") not in (None, "none") else None
    cut = False
    if limit is not None:
        text, calls, thinking, script, cut = _within(limit, text, calls, thinking, script)
    completion = estimate_text_tokens(text or "") + sum(len(c["function"]["arguments"]) // 4 + 1 for c in calls)
    usage = _usage(req, completion * n, estimate_text_tokens(thinking or "") * n, script)
    finish = "length" if cut else "tool_calls" if calls else "stop"
    if not req.get("stream"):
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
        if thinking:
            message["reasoning_content"] = thinking
        if calls:
            message["tool_calls"] = calls
        return SimReply(200, msgspec.json.encode({
            "id": rid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": i, "message": message, "logprobs": None, "finish_reason": finish}
                        for i in range(n)],
            "usage": usage, "service_tier": "default", "system_fingerprint": "fp_sim"}))
    return SimStream(_stream_pieces(rid, created, model, text, thinking, calls, finish, usage, req, script),
                     script.delay_ms / 1000, script.cut)


def _chunk(rid: str, created: int, model: str, choices: list[Any], usage: Any = None) -> bytes:
    return b"data: " + msgspec.json.encode({
        "id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
        "system_fingerprint": "fp_sim", "choices": choices, "usage": usage}) + b"\n\n"


def _stream_pieces(rid: str, created: int, model: str, text: str | None, thinking: str | None,
                   calls: list[dict[str, Any]], finish: str, usage: dict[str, Any], req: dict[str, Any],
                   script: Script) -> list[bytes]:
    def delta(d: dict[str, Any], finish_reason: str | None = None) -> list[Any]:
        return [{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish_reason}]

    pieces = [_chunk(rid, created, model, delta({"role": "assistant", "content": "", "refusal": None}))]
    if script.echo_key:   # a stream that fails midway with an error event echoing the key
        return [*pieces, _chunk(rid, created, model, delta({"content": "partial "})),
                b"data: " + msgspec.json.encode({"error": {"message": f"upstream failed: {echo_key(script)}",
                                                          "type": "server_error"}}) + b"\n\n"]
    if thinking:  # DeepSeek-style: reasoning deltas first, with content null
        pieces += [_chunk(rid, created, model, delta({"content": None, "reasoning_content": w}))
                   for w in split_words(thinking)]
    if text is not None:
        pieces += [_chunk(rid, created, model, delta({"content": w})) for w in split_words(text)]
    for i, call in enumerate(calls):
        pieces.append(_chunk(rid, created, model, delta({"tool_calls": [{
            "index": i, "id": call["id"], "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""}}]})))
        args = call["function"]["arguments"]
        for part in (args[: len(args) // 2], args[len(args) // 2:]):
            pieces.append(_chunk(rid, created, model, delta({"tool_calls": [{
                "index": i, "function": {"arguments": part}}]})))
    pieces.append(_chunk(rid, created, model, delta({}, finish)))
    if (req.get("stream_options") or {}).get("include_usage"):
        pieces.append(_chunk(rid, created, model, [], usage))
    pieces.append(b"data: [DONE]\n\n")
    return pieces
