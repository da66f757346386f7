"""Simulated OpenAI legacy Completions (`POST /v1/completions`), strict like the real endpoint: only
completion models (a chat model is refused, as OpenAI refuses it), `prompt` a string, strings or token
ids, `max_tokens` defaulting to 16 and honoured, `n` <= `best_of` (both billed), `echo`, `suffix`,
`logprobs` (0-5), `stream_options` only with `stream`."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from polyrelay.sim.openai_chat import error_reply
from polyrelay.sim.replies import SimReply, SimStream
from polyrelay.sim.script import Script, fit, reply_words, split_words
from polyrelay.tokens import estimate_text_tokens

COMPLETION_MODELS = ("gpt-3.5-turbo-instruct", "davinci-002", "babbage-002")


def is_completion_model(model: str) -> bool:
    return model.startswith(COMPLETION_MODELS)


def _integer(req: dict[str, Any], name: str, low: int, high: int) -> str | None:
    value = req.get(name)
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
        return None
    return f"Invalid '{name}': expected an integer between {low} and {high}"


def _prompts(prompt: Any) -> list[str] | None:
    """Each prompt as text (token ids are counted as words); None: not a valid prompt."""
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return list(prompt)
        if all(isinstance(t, int) for t in prompt):
            return [" ".join("x" for _ in prompt)]
        if all(isinstance(p, list) and p and all(isinstance(t, int) for t in p) for p in prompt):
            return [" ".join("x" for _ in p) for p in prompt]
    return None


def _validate(req: Any) -> str | None:
    if not isinstance(req, dict):
        return "request body must be a JSON object"
    model = req.get("model")
    if not isinstance(model, str) or not model:
        return "you must provide a model parameter"
    if not is_completion_model(model):
        return ("This is a chat model and not supported in the v1/completions endpoint. "
                "Did you mean to use v1/chat/completions?")
    if _prompts(req.get("prompt")) is None:
        return "Invalid 'prompt': expected a string, an array of strings, or an array of tokens"
    for name, low, high in (("max_tokens", 0, 4096), ("n", 1, 128), ("best_of", 1, 20), ("logprobs", 0, 5)):
        problem = _integer(req, name, low, high)
        if problem:
            return problem
    if (req.get("best_of") or 1) < (req.get("n") or 1):
        return "best_of must be greater than or equal to n"
    if req.get("stream_options") is not None and not req.get("stream"):
        return "The 'stream_options' parameter is only allowed when 'stream' is enabled."
    for name, kind in (("echo", bool), ("suffix", str), ("stream", bool)):
        if req.get(name) is not None and not isinstance(req[name], kind):
            return f"Invalid '{name}'"
    return None


def handle(body: bytes, script: Script) -> SimReply | SimStream:
    try:
        req = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return error_reply(400, "We could not parse the JSON body of your request.")
    problem = _validate(req)
    if problem:
        return error_reply(404 if "chat model" in problem else 400, problem)
    if script.status >= 400:
        return error_reply(script.status, f"simulated error {script.status}")
    prompts = _prompts(req["prompt"]) or []
    limit = req.get("max_tokens", 16)
    text, cut = fit("".join(reply_words(script.chunks or script.words)), limit, estimate_text_tokens)
    n, best_of = int(req.get("n") or 1), int(req.get("best_of") or 1)
    finish = "length" if cut else "stop"
    choices = []
    for p, prompt in enumerate(prompts):
        answer = (prompt if req.get("echo") else "") + text
        logprobs = None
        if req.get("logprobs") is not None:
            words = split_words(text)
            logprobs = {"tokens": words, "token_logprobs": [-0.5] * len(words),
                        "top_logprobs": [{w: -0.5} for w in words], "text_offset": list(range(len(words)))}
        choices += [{"text": answer, "index": p * n + i, "logprobs": logprobs, "finish_reason": finish}
                    for i in range(n)]
    prompt_tokens = sum(estimate_text_tokens(p) for p in prompts)
    completion = estimate_text_tokens(text) * max(n, best_of) * len(prompts)
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
             "total_tokens": prompt_tokens + completion}
    rid, created, model = f"cmpl-sim{time.time_ns() % 10**12}", int(time.time()), req["model"]
    if not req.get("stream"):
        return SimReply(200, msgspec.json.encode({
            "id": rid, "object": "text_completion", "created": created, "model": model,
            "choices": choices, "usage": usage}))

    def chunk(choices: list[Any], **extra: Any) -> bytes:
        return b"data: " + msgspec.json.encode({"id": rid, "object": "text_completion", "created": created,
                                                 "model": model, "choices": choices, **extra}) + b"\n\n"
    pieces = [chunk([{"text": w, "index": 0, "logprobs": None, "finish_reason": None}])
              for w in split_words((prompts[0] if req.get("echo") else "") + text)]
    pieces.append(chunk([{"text": "", "index": 0, "logprobs": None, "finish_reason": finish}]))
    if (req.get("stream_options") or {}).get("include_usage"):
        pieces.append(chunk([], usage=usage))
    pieces.append(b"data: [DONE]\n\n")
    return SimStream(pieces, script.delay_ms / 1000, script.cut)
