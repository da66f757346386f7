"""Simulated Gemini upstream (generateContent, streamGenerateContent, countTokens; embedContent and
batchEmbedContents in gemini_embeddings.py). It accepts camelCase
and snake_case like the real API, answers in camelCase only, and checks what converters get wrong:
part shapes, base64, functionResponse pairing, and Gemini 3 thought signatures on function calls."""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import time
from typing import Any, cast

import msgspec

from polyrelay.sim import search
from polyrelay.sim.openai_images import png
from polyrelay.sim.plan import THINKING_TEXT, plan, sign
from polyrelay.sim.replies import SimReply, SimStream
from polyrelay.sim.script import Script, fit, split_words
from polyrelay.tokens import estimate_text_tokens

_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
_PART_KINDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse")
SKIP_SIGNATURE = "skip_thought_signature_validator"
IMAGE_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
IMAGE_OUTPUT_TOKENS = 1290   # gemini-2.5-flash-image: every image is 1,290 output tokens


def get(d: Any, camel: str, default: Any = None) -> Any:
    """The real API accepts camelCase and snake_case field names alike."""
    if not isinstance(d, dict):
        return default
    value = d.get(camel)
    if value is None:
        value = d.get(re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower())
    return default if value is None else value


class Invalid(Exception):
    pass


def error_reply(status: int, message: str, reason: str | None = None) -> SimReply:
    error: dict[str, Any] = {"code": status, "message": message, "status": _STATUS.get(status, "INTERNAL")}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}]
    return SimReply(status, msgspec.json.encode({"error": error}))


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise Invalid(message)


_TOOL_KINDS = ("functionDeclarations", "googleSearch", "googleSearchRetrieval", "codeExecution", "urlContext")


def _check_tools(tools: Any) -> None:
    """Each Tool holds one kind; Google Search takes an object (its optional filters) and, like the
    real API, cannot be combined with function declarations in one request."""
    if tools is None:
        return
    _check(isinstance(tools, list), "tools must be a list")
    kinds: set[str] = set()
    for i, t in enumerate(tools):
        found = [k for k in _TOOL_KINDS if get(t, k) is not None]
        _check(isinstance(t, dict) and len(t) == len(found) and len(found) >= 1,
               f"Invalid JSON payload received. Unknown name in tools[{i}]: {sorted(t) if isinstance(t, dict) else t}")
        search = get(t, "googleSearch")
        if search is not None:
            _check(isinstance(search, dict) and set(search) <= {"timeRangeFilter", "excludeDomains"},
                   f"Invalid JSON payload received. Unknown name in tools[{i}].googleSearch")
        kinds.update(found)
    _check(not ("googleSearch" in kinds and "functionDeclarations" in kinds),
           "Built-in tools ({google_search}) and Function Calling cannot be combined in the same request.")


def _grounding(user_text: str) -> dict[str, Any]:
    """groundingMetadata for the simulated search answer: segment offsets in UTF-8 bytes of the
    candidate's text, startIndex left out when 0 (proto3 defaults are not written)."""
    supports = []
    for start, end, result in search.cited_spans():
        segment: dict[str, Any] = {"endIndex": end, "text": search.ANSWER.encode()[start:end].decode()}
        if start:
            segment["startIndex"] = start
        supports.append({"segment": segment, "groundingChunkIndices": [result], "confidenceScores": [0.9]})
    return {"webSearchQueries": [search.query_of(user_text)],
            "searchEntryPoint": {"renderedContent": "<div class=\"container\">search suggestions</div>"},
            "groundingChunks": [{"web": {"uri": r.url, "title": r.title}} for r in search.RESULTS],
            "groundingSupports": supports}


def _validate(req: Any, model: str) -> dict[str, Any]:
    _check(isinstance(req, dict), "Invalid JSON payload")
    contents = req.get("contents")
    _check(isinstance(contents, list) and len(contents) > 0, "contents is not specified")
    previous_calls: list[str] = []
    for i, c in enumerate(contents):
        _check(isinstance(c, dict) and (c.get("role") or "user") in ("user", "model"),
               f"contents[{i}].role: Please use a valid role: user, model.")
        parts = c.get("parts")
        _check(isinstance(parts, list) and len(parts) > 0, f"contents[{i}].parts must not be empty")
        calls, responses = [], []
        for j, p in enumerate(parts):
            kinds = [k for k in _PART_KINDS if get(p, k) is not None]
            _check(len(kinds) == 1, f"contents[{i}].parts[{j}]: exactly one data field is required, got {kinds}")
            _check(not isinstance(p, dict) or p.get("text") is None or isinstance(p["text"], str),
                   f"Invalid value at 'contents[{i}].parts[{j}].text' (TYPE_STRING)")
            inline = get(p, "inlineData")
            if inline is not None:
                _check(isinstance(get(inline, "mimeType"), str),
                       f"contents[{i}].parts[{j}].inlineData.mimeType required")
                _check(_b64bytes(inline.get("data", "")) is not None,
                       f"contents[{i}].parts[{j}].inlineData.data: invalid base64")
            if get(p, "fileData") is not None:
                _check(isinstance(get(get(p, "fileData"), "fileUri"), str),
                       f"contents[{i}].parts[{j}].fileData.fileUri required")
            if get(p, "functionCall") is not None:
                calls.append((get(p, "functionCall").get("name"), get(p, "thoughtSignature")))
            if get(p, "functionResponse") is not None:
                responses.append(get(p, "functionResponse").get("name"))
        if calls and "gemini-3" in model:
            name, signature = calls[0]
            _check(signature == SKIP_SIGNATURE or _signed(f"call:{name}", signature),
                   f"Function call is missing a thought_signature in functionCall parts (contents[{i}])")
        if responses:
            _check(sorted(responses) == sorted(previous_calls),
                   f"contents[{i}]: the number and names of function response parts must match the function call "
                   "parts of the previous turn")
        previous_calls = [n for n, _ in calls]
    _check_tools(req.get("tools"))
    cfg = get(req, "generationConfig", {})
    temperature = get(cfg, "temperature")
    _check(temperature is None or 0 <= temperature <= 2, "generationConfig.temperature must be in [0, 2]")
    ratio = get(get(cfg, "imageConfig", {}), "aspectRatio")
    _check(ratio is None or ratio in IMAGE_RATIOS,
           f"generationConfig.imageConfig.aspectRatio: unsupported value '{ratio}'")
    return cast("dict[str, Any]", req)   # checked to be an object above


def _b64bytes(value: Any) -> bytes | None:
    """Like the real API, bytes fields take standard or URL-safe base64 (google-genai sends URL-safe)."""
    try:
        return base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError, TypeError, AttributeError):
        return None


# Real thought signatures are binary, so their base64 has '+' and '/' (a client sends them back URL-safe)
_SIGNATURE_HEAD = b"\xfb\xff\xbf"


def _signature(text: str) -> str:
    return base64.b64encode(_SIGNATURE_HEAD + base64.b64decode(sign(text))).decode()


def _signed(text: str, signature: Any) -> bool:
    raw = _b64bytes(signature)
    return raw is not None and hmac.compare_digest(raw, _SIGNATURE_HEAD + base64.b64decode(sign(text)))


def _text(content: dict[str, Any]) -> str:
    out = []
    for p in content.get("parts") or []:
        if "text" in p:
            out.append(str(p["text"]))
        elif get(p, "functionResponse") is not None:
            out.append(msgspec.json.encode(get(p, "functionResponse").get("response")).decode())
    return " ".join(out)


def _answer(req: dict[str, Any], model: str, script: Script
            ) -> tuple[list[dict[str, Any]], dict[str, int], str, dict[str, Any] | None]:
    cfg = get(req, "generationConfig", {})
    last = req["contents"][-1]
    last_is_result = any(get(p, "functionResponse") is not None for p in last.get("parts") or [])
    declarations = [d for t in req.get("tools") or [] for d in get(t, "functionDeclarations", [])]
    fc = get(get(req, "toolConfig", {}), "functionCallingConfig", {})
    mode = str(get(fc, "mode", "AUTO")).upper()
    allowed = get(fc, "allowedFunctionNames") or []
    choice = allowed[0] if mode == "ANY" and len(allowed) == 1 else {"NONE": "none", "ANY": "any"}.get(mode, "auto")
    json_mode = get(cfg, "responseMimeType") == "application/json"
    schema = get(cfg, "responseJsonSchema") or get(cfg, "responseSchema")
    tools = [(d.get("name"), get(d, "parametersJsonSchema") or d.get("parameters")) for d in declarations]
    answer = plan(script, tools, choice, last_is_result, _text(last), _text(last), schema=schema if json_mode else None,
                  json_mode=json_mode)
    parts: list[dict[str, Any]] = []
    thinking = get(cfg, "thinkingConfig", {})
    if get(thinking, "includeThoughts") and get(thinking, "thinkingBudget") != 0:
        parts.append({"text": THINKING_TEXT, "thought": True})
    images = 0
    if "image" in model and "IMAGE" in [str(m).upper() for m in get(cfg, "responseModalities", [])]:
        ratio = str(get(get(cfg, "imageConfig", {}), "aspectRatio", "1:1"))
        w, h = (int(x) for x in ratio.split(":"))
        if "TEXT" in [str(m).upper() for m in get(cfg, "responseModalities", [])]:
            parts.append({"text": "Here is the image you asked for."})
        parts.append({"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png(8 * w, 8 * h)).decode()}})
        images = 1
    grounded = script.search and any(get(t, "googleSearch") is not None for t in req.get("tools") or [])
    if grounded:
        parts += [{"text": text} for text, _ in search.SEGMENTS]
    elif not images and answer.text is not None:
        parts.append({"text": answer.text})
    for k, (name, args) in enumerate(answer.calls):
        part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
        if k == 0:
            part["thoughtSignature"] = _signature(f"call:{name}")
        parts.append(part)
    prompt = sum(estimate_text_tokens(_text(c)) + 3 for c in req["contents"])
    # like the real API: thinking is counted in thoughtsTokenCount only, not in candidatesTokenCount
    thoughts = (estimate_text_tokens(THINKING_TEXT) if parts and parts[0].get("thought") else 0) + script.reasoning
    candidates = (sum(estimate_text_tokens(p.get("text", "")) for p in parts if not p.get("thought"))
                  + 5 * len(answer.calls))
    candidates += IMAGE_OUTPUT_TOKENS * images
    limit = get(cfg, "maxOutputTokens")
    finish = "STOP"
    if isinstance(limit, int) and thoughts + candidates > limit:   # maxOutputTokens includes thinking
        thoughts = min(thoughts, limit)
        budget = limit - thoughts
        parts = [p if p.get("thought") else {**p, "text": fit(p["text"], budget, estimate_text_tokens)[0]}
                 for p in parts if "text" in p]   # function calls do not fit a cut answer
        candidates = sum(estimate_text_tokens(p["text"]) for p in parts if not p.get("thought"))
        finish = "MAX_TOKENS"
    usage: dict[str, Any] = {"promptTokenCount": prompt, "candidatesTokenCount": candidates,
                             "totalTokenCount": prompt + candidates + thoughts}
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    if images:   # like the real API: the image's tokens by modality
        usage["candidatesTokensDetails"] = [{"modality": "IMAGE", "tokenCount": IMAGE_OUTPUT_TOKENS * images}]
    if script.cached:
        usage["cachedContentTokenCount"] = min(script.cached, prompt)
    return parts, usage, finish, _grounding(_text(last)) if grounded and finish == "STOP" else None


def handle(body: bytes, model: str, method: str, sse: bool, api_key: str | None,
           script: Script) -> SimReply | SimStream:
    if not api_key:
        return error_reply(403, "Method doesn't allow unregistered callers. Please pass a valid API key.")
    if api_key == "sim-bad-key":
        return error_reply(400, "API key not valid. Please pass a valid API key.", reason="API_KEY_INVALID")
    try:
        req = msgspec.json.decode(body)
        if method in ("embedContent", "batchEmbedContents"):
            from polyrelay.sim import gemini_embeddings  # it builds on this module

            if script.status >= 400:
                return error_reply(script.status, f"simulated error {script.status}")
            return SimReply(200, msgspec.json.encode(gemini_embeddings.handle(req, model, method)))
        if method == "countTokens":
            inner = get(req, "generateContentRequest") if isinstance(req, dict) else None
            # like the real API: the inner request names its model, though the URL does too
            _check(inner is None or str(get(inner, "model", "")).startswith("models/"),
                   "generateContentRequest.model: * GenerateContentRequest.model: unexpected model name format")
            req = _validate(inner or req, model)
            return SimReply(200, msgspec.json.encode({"totalTokens": sum(
                estimate_text_tokens(_text(c)) + 3 for c in req["contents"])}))
        req = _validate(req, model)
    except msgspec.DecodeError:
        return error_reply(400, "Invalid JSON payload received.")
    except Invalid as e:
        return error_reply(400, str(e))
    if script.status >= 400:
        return error_reply(script.status, f"simulated error {script.status}")
    parts, usage, finish, grounding = _answer(req, model, script)
    rid = f"sim{time.time_ns() % 10**12}"
    if method == "generateContent":
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}
        if grounding:
            candidate["groundingMetadata"] = grounding
        return SimReply(200, msgspec.json.encode({
            "candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": rid}))
    chunks: list[dict[str, Any]] = []
    for part in parts:
        pieces = split_words(part["text"]) if "text" in part and not part.get("thought") else [None]
        for piece in pieces:
            chunks.append({"candidates": [{"content": {"role": "model", "parts": [
                part if piece is None else {"text": piece}]}, "index": 0}], "modelVersion": model, "responseId": rid})
    if not chunks:   # an answer cut to nothing
        chunks.append({"candidates": [{"content": {"role": "model", "parts": []}, "index": 0}],
                       "modelVersion": model, "responseId": rid})
    chunks[-1]["candidates"][0]["finishReason"] = finish
    if grounding:   # as Gemini streams it: with the last chunk
        chunks[-1]["candidates"][0]["groundingMetadata"] = grounding
    chunks[-1]["usageMetadata"] = usage
    encoded = [msgspec.json.encode(c) for c in chunks]
    if sse:
        return SimStream([b"data: " + c + b"\r\n\r\n" for c in encoded], script.delay_ms / 1000, script.cut)
    return SimReply(200, b"[" + b",\r\n".join(encoded) + b"]")
