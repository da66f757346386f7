"""Small facts and helpers every protocol converter shares."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import logging
import re
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import msgspec

from polyrelay import ir
from polyrelay.errors import GatewayError, invalid_request, too_deep

log = logging.getLogger("polyrelay.convert")

# reasoning effort <-> thinking budget (protocols.md §2.6)
EFFORT_BUDGET = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096, "xhigh": 8192, "max": 16384}
MIN_THINKING_BUDGET = 1024


def effort_to_budget(effort: str | None) -> int | None:
    return EFFORT_BUDGET.get(effort or "")


def budget_to_effort(budget: int) -> str:
    if budget < 2048:
        return "low"
    return "medium" if budget < 8192 else "high"


_UNSAFE_NAME = re.compile(r"[^a-zA-Z0-9_-]")


def safe_tool_name(name: str, limit: int) -> str:
    """A function name OpenAI (64) or Anthropic (128) accepts: ^[a-zA-Z0-9_-]{1,limit}$. Gemini allows
    `.` and `:` too; the relay maps the names back in the answer (`tool_names_to_restore`)."""
    return _UNSAFE_NAME.sub("_", name)[:limit] or "tool"


def split_data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a `data:<type>;base64,<data>` URL, else None."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url.partition(",")
    if not sep or not head.endswith(";base64"):
        return None
    return head[5:-7] or "application/octet-stream", data


def data_url(media_type: str | None, data: str) -> str:
    return f"data:{media_type or 'application/octet-stream'};base64,{data}"


_TO_STANDARD = str.maketrans("-_", "+/")


def standard_base64(data: str) -> str:
    """`data` in standard, padded base64 (what OpenAI data URLs and Anthropic `source.data` require).
    google-genai sends bytes URL-safe (`-`, `_`) and some clients leave the padding off; valid
    standard base64 is returned as it is, after two C-level searches."""
    if "-" in data or "_" in data:
        data = data.translate(_TO_STANDARD)  # 1.8 ms per 2 MB; two str.replace calls took twice that
    pad = -len(data) % 4
    return data + "=" * pad if pad else data


def decode_base64(data: str) -> bytes | None:
    """The bytes of standard or URL-safe base64, padded or not; None if it is neither."""
    try:
        return base64.b64decode(standard_base64(data), validate=True)
    except (binascii.Error, ValueError):
        return None


def short_identifier(value: str, limit: int) -> str:
    """`value` if it fits in `limit` characters, else its SHA-256 in hex (64 characters, cut to
    `limit`): stable, so the upstream still groups one end user's requests, and it reveals nothing
    of the original (Claude Code's `metadata.user_id` is a ~180-character JSON string)."""
    if len(value) <= limit:
        return value
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:limit]


def parse_arguments(arguments: str) -> dict[str, Any]:
    """Tool-call arguments as an object; unparseable text becomes {} (logged), never a crash."""
    if not arguments:
        return {}
    try:
        value = msgspec.json.decode(arguments)
    except msgspec.DecodeError:
        lost("tool call arguments", "changed", "not JSON; sent as {}")
        log.info("tool call arguments are not JSON: %.200s", arguments)
        return {}
    return value if isinstance(value, dict) else {"value": value}


def dump_arguments(value: Any) -> str:
    return msgspec.json.encode(value if value is not None else {}).decode()


def decode_json_object(body: bytes, what: str = "request body") -> dict[str, Any]:
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError as e:
        raise invalid_request(f"the {what} is not valid JSON: {e}") from None
    except RecursionError:
        raise too_deep(f"the {what}") from None
    if not isinstance(value, dict):
        raise invalid_request(f"the {what} must be a JSON object")
    return value


def expect(ok: bool, message: str, param: str | None = None) -> None:
    if not ok:
        raise invalid_request(message, param=param)


# the losses of the parse or render running now (None outside one: then a loss is only logged)
_LOSSES: ContextVar[list[ir.Loss] | None] = ContextVar("polyrelay_conversion_losses", default=None)


def lost(field: str, what: str, why: str) -> None:
    """Record that the conversion running now could not carry `field` as it was."""
    losses = _LOSSES.get()
    if losses is None:
        log.warning("%s %s: %s", field, what, why)
    else:
        losses.append(ir.Loss(field, what, why))


def dropped(field: str, target: str) -> None:
    lost(field, "dropped", f"no equivalent in {target}")


def char_span(c: ir.Citation, text: bytes, base: int = 0) -> tuple[int, int] | None:
    """An IR citation's byte offsets (`base` bytes before `text`) as character offsets of `text`, the
    unit OpenAI's annotations count in; None when it lies outside `text`."""
    start, end = c.start - base, min(c.end - base, len(text))
    if start < 0 or start >= end:
        return None
    first = len(text[:start].decode("utf-8", "ignore"))
    return first, first + len(text[start:end].decode("utf-8", "ignore"))


def cannot_search(req: ir.Request, target: str) -> None:
    """A target with no web search: a request that forces it is refused (its answer would be wrong
    without); one that only offers it goes without, reported (Codex offers it on every request)."""
    if req.web_search is None:
        return
    if req.web_search.forced:
        raise GatewayError(400, "invalid_request", f"tool_choice requires web search, which this model's channel "
                           f"({target}) cannot run; offer the tool without forcing it, or use a model served by "
                           "an OpenAI Responses, Anthropic or Gemini channel", param="tool_choice")
    lost("web_search", "dropped", f"{target} channels cannot search the web")


def parse_with_losses(parse: Callable[[bytes], ir.Request]) -> Callable[[bytes], ir.Request]:
    """`parse(body)` that keeps what it dropped in `Request.losses`."""
    @functools.wraps(parse)
    def recorded(body: bytes) -> ir.Request:
        losses: list[ir.Loss] = []
        token = _LOSSES.set(losses)
        try:
            req = parse(body)
        finally:
            _LOSSES.reset(token)
        if losses:
            req.losses = losses
        return req
    return recorded


def render_with_losses(render: Callable[..., bytes]) -> Callable[..., tuple[bytes, list[ir.Loss]]]:
    """`render(req, upstream_model)` -> (body, the losses of parsing `req` and of rendering it)."""
    @functools.wraps(render)
    def recorded(req: ir.Request, upstream_model: str, **options: Any) -> tuple[bytes, list[ir.Loss]]:
        losses = list(req.losses)
        token = _LOSSES.set(losses)
        try:
            return render(req, upstream_model, **options), losses
        finally:
            _LOSSES.reset(token)
    return recorded


def text_of_parts(parts: list[Any]) -> str:
    """Concatenated text of IR text parts (others ignored)."""
    return "".join(getattr(p, "text", "") for p in parts if type(p).__name__ == "TextPart")
