"""Canned upstream responses and the request bodies the load generators send.

Everything is deterministic so that every target sees byte-identical traffic.
"""

from __future__ import annotations

import base64
import json
import random

STREAM_CHUNKS = 100     # content events in the canned SSE streams
REPLY_TEXT = ("Hello! This is a canned benchmark reply from the fake upstream. It is long enough "
              "to look like a short real answer and carries usage so that billing runs.")
USAGE = {"prompt_tokens": 25, "completion_tokens": 40, "total_tokens": 65}

USER_PROMPT = "Say hello in a few words."
OPENAI_MODEL = "bench-model"      # channel on /ns/v1 (non-stream JSON)
STREAM_MODEL = "bench-stream"     # channel on /st/v1 (100-chunk SSE)
CLAUDE_MODEL = "bench-claude"     # Anthropic channel on /an (convert path)
SLOW_MODEL = "bench-slow"         # channel on the aiohttp slow-stream server
RESPONSES_MODEL = "bench-responses"   # OpenAI channel with `api: responses` on /rs/v1 (Responses fast path)
RESPONSES_STREAM_MODEL = "bench-responses-stream"   # the same on /rss/v1 (a 100-delta Responses stream)


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def openai_response() -> bytes:
    return _dumps({
        "id": "chatcmpl-bench0001", "object": "chat.completion", "created": 1700000000,
        "model": OPENAI_MODEL, "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY_TEXT},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": USAGE,
    }).encode()


def openai_chunk(delta: dict, finish: str | None = None, model: str = STREAM_MODEL) -> str:
    return "data: " + _dumps({
        "id": "chatcmpl-bench0002", "object": "chat.completion.chunk", "created": 1700000000,
        "model": model, "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }) + "\n\n"


def openai_usage_chunk(model: str = STREAM_MODEL) -> str:
    return "data: " + _dumps({
        "id": "chatcmpl-bench0002", "object": "chat.completion.chunk", "created": 1700000000,
        "model": model, "choices": [], "usage": USAGE}) + "\n\n"


def stream_words(n: int) -> list[str]:
    words = REPLY_TEXT.split()
    return [words[i % len(words)] + " " for i in range(n)]


def openai_stream(n: int = STREAM_CHUNKS) -> bytes:
    """Role chunk, n-2 content chunks, a finish chunk (n events), then usage and [DONE]."""
    parts = [openai_chunk({"role": "assistant", "content": ""})]
    parts += [openai_chunk({"content": w}) for w in stream_words(n - 2)]
    parts.append(openai_chunk({}, "stop"))
    parts.append(openai_usage_chunk())
    parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


def anthropic_response() -> bytes:
    return _dumps({
        "id": "msg_bench0001", "type": "message", "role": "assistant", "model": CLAUDE_MODEL,
        "content": [{"type": "text", "text": REPLY_TEXT}], "stop_reason": "end_turn",
        "stop_sequence": None, "usage": {"input_tokens": 25, "output_tokens": 40},
    }).encode()


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {_dumps(data)}\n\n"


def anthropic_stream(n: int = STREAM_CHUNKS) -> bytes:
    parts = [_event("message_start", {"type": "message_start", "message": {
        "id": "msg_bench0002", "type": "message", "role": "assistant", "model": CLAUDE_MODEL,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 25, "output_tokens": 1}}}),
        _event("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "text", "text": ""}})]
    parts += [_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                             "delta": {"type": "text_delta", "text": w}})
              for w in stream_words(n)]
    parts.append(_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    parts.append(_event("message_delta", {"type": "message_delta",
                                          "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                          "usage": {"output_tokens": 40}}))
    parts.append(_event("message_stop", {"type": "message_stop"}))
    return "".join(parts).encode()


def responses_response() -> bytes:
    return _dumps({
        "id": "resp_bench0001", "object": "response", "created_at": 1700000000, "status": "completed",
        "error": None, "incomplete_details": None, "instructions": None, "model": RESPONSES_MODEL,
        "output": [{"id": "msg_bench0001", "type": "message", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": REPLY_TEXT, "annotations": []}]}],
        "parallel_tool_calls": True, "store": False, "tool_choice": "auto", "tools": [],
        "usage": {"input_tokens": 25, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 40,
                  "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 65},
    }).encode()


def responses_stream(n: int = STREAM_CHUNKS) -> bytes:
    """The event sequence of one message item with n text deltas, as the Responses API streams it."""
    seq = iter(range(10_000))
    item = {"id": "msg_bench0002", "type": "message", "status": "in_progress", "role": "assistant", "content": []}
    start = {"id": "resp_bench0002", "object": "response", "created_at": 1700000000, "status": "in_progress",
             "model": RESPONSES_STREAM_MODEL, "output": [], "usage": None}

    def event(kind: str, **fields: object) -> str:
        return _event(kind, {"type": kind, "sequence_number": next(seq), **fields})

    words = stream_words(n)
    text = "".join(words)
    part = {"type": "output_text", "text": text, "annotations": []}
    done = {**item, "status": "completed", "content": [part]}
    parts = [event("response.created", response=start), event("response.in_progress", response=start),
             event("response.output_item.added", output_index=0, item=item),
             event("response.content_part.added", item_id="msg_bench0002", output_index=0, content_index=0,
                   part={**part, "text": ""})]
    parts += [event("response.output_text.delta", item_id="msg_bench0002", output_index=0, content_index=0,
                    delta=w, logprobs=[]) for w in words]
    parts += [event("response.output_text.done", item_id="msg_bench0002", output_index=0, content_index=0,
                    text=text, logprobs=[]),
              event("response.content_part.done", item_id="msg_bench0002", output_index=0, content_index=0, part=part),
              event("response.output_item.done", output_index=0, item=done),
              event("response.completed", response={**start, "status": "completed", "output": [done], "usage": {
                  "input_tokens": 25, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 40,
                  "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 65}})]
    return "".join(parts).encode()


# ---- request bodies -------------------------------------------------------------------------


def responses_request(model: str, stream: bool = False, store: bool = False) -> bytes:
    """What a Responses client (the openai SDK's `client.responses.create`) sends; `store` true: the
    gateway keeps each answer (docs/responses.md), as it does when a client does not say `store`."""
    body: dict = {"model": model, "input": [{"role": "user", "content": USER_PROMPT}], "max_output_tokens": 64,
                  "store": store}
    if stream:
        body["stream"] = True
    return _dumps(body).encode()


def chat_request(model: str, stream: bool = False) -> bytes:
    body: dict = {"model": model, "messages": [{"role": "user", "content": USER_PROMPT}],
                  "max_tokens": 64}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return _dumps(body).encode()


def anthropic_request(model: str = CLAUDE_MODEL) -> bytes:
    """What the client would send to an Anthropic upstream directly (the convert path's baseline)."""
    return _dumps({"model": model, "max_tokens": 64,
                   "messages": [{"role": "user", "content": USER_PROMPT}]}).encode()


def image_request(model: str = OPENAI_MODEL, size: int = 2 * 1024 * 1024) -> bytes:
    """A chat request whose body is about `size` bytes, mostly one base64 PNG data URL."""
    raw_len = (size - 400) * 3 // 4
    rnd = random.Random(5)
    raw = b"\x89PNG\r\n\x1a\n" + rnd.randbytes(raw_len - 8)
    url = "data:image/png;base64," + base64.b64encode(raw).decode()
    return _dumps({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": url}}]}]}).encode()
