"""Simulated OpenAI Responses upstream (`POST /v1/responses`, `POST /v1/responses/input_tokens`).

Validates like the real API: unknown top-level fields, item types and id prefixes, a
`function_call_output` without its call in the input, a reasoning item whose `encrypted_content`
is not the one issued for its id (the pair must come back together), `max_output_tokens` below
16, a json_schema format without name or schema, URL-safe base64 in data URLs. Answers with the
event order the openai SDK's `responses.stream()` and Codex read; with `reasoning` (effort not
none) a reasoning item comes first, its summary when asked, its `encrypted_content` always
(the gateway asks for it: `store` is false on every converted request).
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

import msgspec

from polyrelay.sim import search
from polyrelay.sim.openai_chat import error_reply
from polyrelay.sim.plan import THINKING_TEXT, plan, sign
from polyrelay.sim.replies import SimReply, SimStream
from polyrelay.sim.script import Script, echo_key, fit, split_words
from polyrelay.tokens import estimate_text_tokens

_FIELDS = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "text", "reasoning",
    "max_output_tokens", "max_tool_calls", "temperature", "top_p", "top_logprobs", "stream", "stream_options", "store",
    "metadata", "user", "safety_identifier", "include", "prompt_cache_key", "prompt_cache_retention",
    "prompt_cache_options", "truncation", "service_tier", "background", "background_options", "previous_response_id",
    "conversation", "prompt", "context_management", "client_metadata", "moderation", "access_programs", "image"})
_ITEM_PREFIX = {"message": "msg", "function_call": "fc", "reasoning": "rs", "custom_tool_call": "ctc",
                "web_search_call": "ws"}
_WEB_SEARCH = frozenset({"web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11"})
_WEB_SEARCH_FIELDS = frozenset({"type", "filters", "user_location", "search_context_size", "external_web_access"})
_LOCATION_FIELDS = frozenset({"type", "city", "country", "region", "timezone"})
_ITEMS = frozenset({"message", "function_call", "function_call_output", "reasoning", "custom_tool_call",
                    "custom_tool_call_output", "item_reference", "additional_tools", "tool_search_call",
                    "tool_search_output", "web_search_call"})


def _encrypted(item_id: str) -> str:
    """What the simulator issues as a reasoning item's encrypted_content (checked on replay)."""
    return "gAAAAB" + sign("reasoning:" + item_id)


def _standard_base64(data: str) -> bool:
    try:
        base64.b64decode(data, validate=True)
        return True
    except (binascii.Error, ValueError):
        return False


def _check_part(p: Any, where: str) -> str | None:
    if not isinstance(p, dict) or not isinstance(p.get("type"), str):
        return f"Invalid '{where}': expected an object with a type."
    if p["type"] in ("input_image", "input_file"):
        url = p.get("image_url") if p["type"] == "input_image" else p.get("file_data")
        if isinstance(url, str) and url.startswith("data:"):
            head, _, data = url.partition(",")
            if not head.endswith(";base64") or not _standard_base64(data):
                return f"Invalid '{where}': expected a base64-encoded data URL."
        if p["type"] == "input_file" and p.get("file_data") and not p.get("filename"):
            return f"Missing required parameter: '{where}.filename'."
    return None


def _check_items(items: list[Any], store: bool) -> str | None:
    calls: set[str] = set()
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            return f"Invalid '{where}': expected an object."
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind not in _ITEMS:
            return f"Invalid value: '{kind}'. Supported values are: {', '.join(sorted(_ITEMS))}. ('{where}.type')"
        prefix = _ITEM_PREFIX.get(kind)
        if prefix and item.get("id") is not None and not str(item["id"]).startswith(prefix):
            return f"Invalid '{where}.id': '{item['id']}'. Expected an ID that begins with '{prefix}'."
        if kind == "message":
            if item.get("role") not in ("user", "assistant", "system", "developer"):
                return f"Invalid value: '{item.get('role')}'. ('{where}.role')"
            if isinstance(item.get("content"), list):
                for j, p in enumerate(item["content"]):
                    problem = _check_part(p, f"{where}.content[{j}]")
                    if problem:
                        return problem
            elif not isinstance(item.get("content"), str):
                return f"Missing required parameter: '{where}.content'."
        elif kind in ("function_call", "custom_tool_call"):
            if not item.get("call_id") or not item.get("name"):
                return f"Missing required parameter: '{where}.call_id'."
            calls.add(item["call_id"])
        elif kind in ("function_call_output", "custom_tool_call_output"):
            if item.get("call_id") not in calls:
                return f"No tool call found for function call output with call_id {item.get('call_id')}."
        elif kind == "reasoning":
            rid, content = item.get("id"), item.get("encrypted_content")
            if not store and content is None:
                return (f"Item with id '{rid}' not found. Items are not persisted when `store` is set to false. "
                        "Try again with `store` set to true, or remove this item from your input.")
            if content is not None and content != _encrypted(str(rid)):
                return f"The encrypted content for item {rid} could not be verified."
        elif kind == "item_reference" and not store:
            return f"Item with id '{item.get('id')}' not found."
    return None


def _check_web_search(t: dict[str, Any], where: str) -> str | None:
    extra = sorted(set(t) - _WEB_SEARCH_FIELDS)
    if extra:
        return f"Unknown parameter: '{where}.{extra[0]}'."
    filters = t.get("filters")
    if filters is not None and (not isinstance(filters, dict) or set(filters) - {"allowed_domains"}):
        return f"Invalid '{where}.filters': only allowed_domains is supported."
    where_ = t.get("user_location")
    if where_ is not None and (not isinstance(where_, dict) or where_.get("type") != "approximate"
                               or set(where_) - _LOCATION_FIELDS):
        return f"Invalid '{where}.user_location': expected an approximate location."
    if t.get("search_context_size") not in (None, "low", "medium", "high"):
        return f"Invalid value: '{t['search_context_size']}'. ('{where}.search_context_size')"
    return None


def _offers_search(req: dict[str, Any]) -> bool:
    return any(isinstance(t, dict) and t.get("type") in _WEB_SEARCH for t in req.get("tools") or [])


def _searches(req: dict[str, Any], script: Script) -> bool:
    choice = req.get("tool_choice")
    forced = isinstance(choice, dict) and choice.get("type") in _WEB_SEARCH
    return _offers_search(req) and (script.search or forced)


def validate(req: Any) -> str | None:
    if not isinstance(req, dict):
        return "request body must be a JSON object"
    unknown = [k for k in req if k not in _FIELDS]
    if unknown:
        return f"Unknown parameter: '{unknown[0]}'."
    if not isinstance(req.get("model"), str) or not req["model"]:
        return "Missing required parameter: 'model'."
    items = req.get("input")
    if not isinstance(items, (str, list)):
        return "Missing required parameter: 'input'."
    limit = req.get("max_output_tokens")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 16):
        return f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got {limit}."
    temperature = req.get("temperature")
    if temperature is not None and not (isinstance(temperature, (int, float)) and 0 <= temperature <= 2):
        return "Invalid 'temperature': expected a number between 0 and 2."
    fmt = (req.get("text") or {}).get("format") or {}
    if fmt.get("type") == "json_schema" and (not fmt.get("name") or not isinstance(fmt.get("schema"), dict)):
        return "Missing required parameter: 'text.format.name'."
    for i, t in enumerate(req.get("tools") or []):
        if not isinstance(t, dict) or not isinstance(t.get("type"), str):
            return f"Invalid 'tools[{i}]': expected an object with a type."
        if t["type"] in ("function", "custom") and not t.get("name"):
            return f"Missing required parameter: 'tools[{i}].name'."
        if t["type"] in _WEB_SEARCH:
            problem = _check_web_search(t, f"tools[{i}]")
            if problem:
                return problem
    choice = req.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in _WEB_SEARCH and not _offers_search(req):
        return "Tool choice 'web_search' not found in 'tools' parameter."
    if isinstance(items, list):
        return _check_items(items, req.get("store", True) is not False)
    return None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _usage(req: dict[str, Any], output: int, reasoning: int, script: Script) -> dict[str, Any]:
    items = req["input"]
    prompt = estimate_text_tokens(items if isinstance(items, str) else msgspec.json.encode(items).decode()) + 3
    prompt += estimate_text_tokens(req.get("instructions") or "")
    prompt += 1000 * str(items).count("input_image")
    reasoning += script.reasoning
    output += reasoning
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": min(script.cached, prompt)},
            "output_tokens": output, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + output}


def _last(req: dict[str, Any]) -> dict[str, Any]:
    items = req["input"]
    last = {"type": "message", "role": "user", "content": items} if isinstance(items, str) else (items or [{}])[-1]
    return last if isinstance(last, dict) else {}


def _last_text(req: dict[str, Any]) -> str:
    return _text(_last(req).get("content"))


def _plan(req: dict[str, Any], script: Script) -> tuple[str | None, list[tuple[str, str, dict[str, Any]]]]:
    tools = [(t["name"], t.get("parameters") if t["type"] == "function" else
              {"type": "object", "properties": {"input": {"type": "string"}}}, t["type"])
             for t in req.get("tools") or [] if t.get("type") in ("function", "custom")]
    choice = req.get("tool_choice", "auto")
    if isinstance(choice, dict):
        choice = choice.get("name", "auto")
    elif choice == "required":
        choice = "any"
    last = _last(req)
    is_result = last.get("type") in ("function_call_output", "custom_tool_call_output")
    last_text = _text(last.get("output") if is_result else last.get("content"))
    fmt = (req.get("text") or {}).get("format") or {}
    answer = plan(script, [(n, p) for n, p, _ in tools], str(choice), is_result, last_text, last_text,
                  schema=fmt.get("schema", {}) if fmt.get("type") == "json_schema" else None,
                  json_mode=fmt.get("type") == "json_object")
    kinds = {n: k for n, _, k in tools}
    return answer.text, [(kinds.get(name, "function"), name, args) for name, args in answer.calls]


def _annotations(text: str) -> list[dict[str, Any]]:
    """url_citation annotations of the search answer (character offsets, as OpenAI counts them)."""
    if not text.startswith(search.ANSWER[:10]):
        return []
    out, at = [], 0
    for segment, result in search.SEGMENTS:
        if result >= 0 and at + len(segment) <= len(text):
            r = search.RESULTS[result]
            out.append({"type": "url_citation", "url": r.url, "title": r.title, "start_index": at,
                        "end_index": at + len(segment)})
        at += len(segment)
    return out


def _items(rid: str, text: str | None, thinking: str | None, calls: list[tuple[str, str, dict[str, Any]]],
           req: dict[str, Any], searched: bool = False) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    n = 0

    def new_id(prefix: str) -> str:
        nonlocal n
        n += 1
        return f"{prefix}_{rid[5:]}{n:02d}"

    if thinking is not None:
        reasoning = req.get("reasoning") or {}
        rs = new_id("rs")
        summary = [{"type": "summary_text", "text": thinking}] if reasoning.get("summary") else []
        item: dict[str, Any] = {"id": rs, "type": "reasoning", "summary": summary}
        if "reasoning.encrypted_content" in (req.get("include") or []):
            item["encrypted_content"] = _encrypted(rs)
        items.append(item)
    if searched:
        action: dict[str, Any] = {"type": "search", "query": search.query_of(_last_text(req))}
        if "web_search_call.action.sources" in (req.get("include") or []):
            action["sources"] = [{"type": "url", "url": r.url} for r in search.RESULTS]
        items.append({"id": new_id("ws"), "type": "web_search_call", "status": "completed", "action": action})
    if text is not None:
        annotations = _annotations(text) if searched else []
        items.append({"id": new_id("msg"), "type": "message", "status": "completed", "role": "assistant",
                      "content": [{"type": "output_text", "text": text, "annotations": annotations,
                                   "logprobs": []}]})
    for i, (kind, name, args) in enumerate(calls):
        call_id = f"call_sim{i}{int(time.time() * 1000) % 100000}"
        if kind == "custom":
            items.append({"id": new_id("ctc"), "type": "custom_tool_call", "status": "completed", "call_id": call_id,
                          "name": name, "input": str(args.get("input", "*** Begin Patch"))})
        else:
            items.append({"id": new_id("fc"), "type": "function_call", "status": "completed", "call_id": call_id,
                          "name": name, "arguments": msgspec.json.encode(args).decode()})
    return items


def _response(rid: str, req: dict[str, Any], status: str, output: list[Any], usage: Any) -> dict[str, Any]:
    return {"id": rid, "object": "response", "created_at": int(time.time()), "status": status, "background": False,
            "error": None, "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": req.get("instructions"), "max_output_tokens": req.get("max_output_tokens"),
            "model": req["model"], "output": output, "parallel_tool_calls": req.get("parallel_tool_calls", True),
            "previous_response_id": None, "reasoning": req.get("reasoning") or {"effort": None, "summary": None},
            "store": req.get("store", True), "temperature": req.get("temperature", 1.0),
            "text": req.get("text") or {"format": {"type": "text"}}, "tool_choice": req.get("tool_choice", "auto"),
            "tools": req.get("tools") or [], "top_p": req.get("top_p", 1.0), "truncation": "disabled",
            "usage": usage, "user": None, "metadata": req.get("metadata") or {}}


def handle(body: bytes, script: Script) -> SimReply | SimStream:
    try:
        req = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return error_reply(400, "We could not parse the JSON body of your request.")
    problem = validate(req)
    if problem:
        return error_reply(400, problem)
    if script.status >= 400:
        if script.status == 401:
            return error_reply(401, f"Incorrect API key provided: {script.api_key}.")
        if script.echo_key:
            return error_reply(script.status, f"simulated error {script.status}: {echo_key(script)}")
        return error_reply(script.status, f"simulated error {script.status}")
    text, calls = _plan(req, script)
    searched = _searches(req, script)
    if searched:
        text, calls = search.ANSWER, []
    effort = (req.get("reasoning") or {}).get("effort")
    thinking = THINKING_TEXT if req.get("reasoning") and effort != "none" else None
    limit = req.get("max_output_tokens")
    status = "completed"
    if limit is not None and text is not None:
        text, cut = fit(text, limit - estimate_text_tokens(thinking or "") - script.reasoning, estimate_text_tokens)
        status = "incomplete" if cut else status
    rid = f"resp_sim{time.time_ns() % 10**12:012d}"
    output = _items(rid, text, thinking, calls, req, searched)
    completion = estimate_text_tokens(text or "") + sum(len(msgspec.json.encode(a)) // 4 + 1 for _, _, a in calls)
    usage = _usage(req, completion, estimate_text_tokens(thinking or ""), script)
    final = _response(rid, req, status, output, usage)
    if not req.get("stream"):
        return SimReply(200, msgspec.json.encode(final))
    return SimStream(_events(final, script), script.delay_ms / 1000, script.cut)


class _Seq:
    def __init__(self) -> None:
        self.n = 0
        self.pieces: list[bytes] = []

    def __call__(self, kind: str, **fields: Any) -> None:
        payload = msgspec.json.encode({"type": kind, "sequence_number": self.n, **fields})
        self.n += 1
        self.pieces.append(b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n")


def _events(final: dict[str, Any], script: Script) -> list[bytes]:
    emit = _Seq()
    start = {**final, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    emit("response.created", response=start)
    emit("response.in_progress", response=start)
    if script.echo_key:
        emit("error", code="server_error", message=f"upstream failed: {echo_key(script)}", param=None)
        return emit.pieces
    for index, item in enumerate(final["output"]):
        kind, iid = item["type"], item["id"]
        if kind == "message":
            emit("response.output_item.added", output_index=index,
                 item={**item, "status": "in_progress", "content": []})
            text = item["content"][0]["text"]
            emit("response.content_part.added", item_id=iid, output_index=index, content_index=0,
                 part={"type": "output_text", "text": "", "annotations": []})
            for word in split_words(text):
                emit("response.output_text.delta", item_id=iid, output_index=index, content_index=0, delta=word,
                     logprobs=[])
            for a, annotation in enumerate(item["content"][0]["annotations"]):
                emit("response.output_text.annotation.added", item_id=iid, output_index=index, content_index=0,
                     annotation_index=a, annotation=annotation)
            emit("response.output_text.done", item_id=iid, output_index=index, content_index=0, text=text, logprobs=[])
            emit("response.content_part.done", item_id=iid, output_index=index, content_index=0,
                 part=item["content"][0])
        elif kind == "web_search_call":
            emit("response.output_item.added", output_index=index,
                 item={"id": iid, "type": "web_search_call", "status": "in_progress", "action": {"type": "search"}})
            for step in ("in_progress", "searching", "completed"):
                emit(f"response.web_search_call.{step}", output_index=index, item_id=iid)
        elif kind == "reasoning":
            emit("response.output_item.added", output_index=index, item={"id": iid, "type": "reasoning", "summary": []})
            for s, part in enumerate(item["summary"]):
                emit("response.reasoning_summary_part.added", item_id=iid, output_index=index, summary_index=s,
                     part={"type": "summary_text", "text": ""})
                for word in split_words(part["text"]):
                    emit("response.reasoning_summary_text.delta", item_id=iid, output_index=index, summary_index=s,
                         delta=word)
                emit("response.reasoning_summary_text.done", item_id=iid, output_index=index, summary_index=s,
                     text=part["text"])
                emit("response.reasoning_summary_part.done", item_id=iid, output_index=index, summary_index=s,
                     part=part)
        elif kind == "function_call":
            emit("response.output_item.added", output_index=index,
                 item={**item, "status": "in_progress", "arguments": ""})
            args = item["arguments"]
            for piece in (args[: len(args) // 2], args[len(args) // 2:]):
                emit("response.function_call_arguments.delta", item_id=iid, output_index=index, delta=piece)
            emit("response.function_call_arguments.done", item_id=iid, output_index=index, arguments=args)
        elif kind == "custom_tool_call":
            emit("response.output_item.added", output_index=index, item={**item, "status": "in_progress", "input": ""})
            emit("response.custom_tool_call_input.delta", item_id=iid, output_index=index, delta=item["input"])
            emit("response.custom_tool_call_input.done", item_id=iid, output_index=index, input=item["input"])
        emit("response.output_item.done", output_index=index, item=item)
    emit("response.completed" if final["status"] == "completed" else "response.incomplete", response=final)
    return emit.pieces


def input_tokens(body: bytes) -> SimReply:
    try:
        req = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return error_reply(400, "We could not parse the JSON body of your request.")
    allowed = {"model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "text", "reasoning",
               "truncation", "conversation", "previous_response_id"}
    unknown = [k for k in req if k not in allowed] if isinstance(req, dict) else ["body"]
    if unknown:
        return error_reply(400, f"Unknown parameter: '{unknown[0]}'.")
    items = req.get("input") or ""
    n = estimate_text_tokens(items if isinstance(items, str) else msgspec.json.encode(items).decode()) + 3
    n += estimate_text_tokens(req.get("instructions") or "")
    return SimReply(200, msgspec.json.encode({"object": "response.input_tokens", "input_tokens": n}))
