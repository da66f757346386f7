"""Output limits and answer counts: read ONCE per protocol, by the fast-path peek (raw top-level
fields) and by the converter (a decoded body) alike, so both always agree on what the client asked
for. The reservation is computed from this reading and the upstream is sent this reading; a second,
different reading (`maxOutputTokens or max_output_tokens` against `maxOutputTokens` alone) once let
a request reserve nothing and be served in full.

Bounds (a 400 in the caller's shape outside them):
- output limits: integers from 1 to MAX_OUTPUT_TOKENS (Anthropic's `max_tokens` may be 0: it only
  pre-warms the prompt cache); an integral float (`100.0`) is taken as the integer;
- answer counts (`n`, `candidateCount`): integers from 1 to MAX_CHOICES (OpenAI's documented range);
- the same field given twice (Gemini's camelCase and snake_case spellings, OpenAI's
  `max_completion_tokens` and `max_tokens`) must say the same thing.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import msgspec

from polyrelay.config import MAX_OUTPUT_TOKENS  # no model writes more in one answer (the largest: 128K)
from polyrelay.errors import invalid_request

MAX_CHOICES = 128


class Fields(Protocol):
    def get(self, name: str) -> Any: ...


class Limits(NamedTuple):
    max_output: int | None    # the client's output limit per answer, None when it set none
    n: int | None             # answers asked for, None when not set (one)

_OPEN_BRACE = ord("{")


class RawFields:
    """An object's fields, decoded one at a time on demand (the peek's raw top level, or a nested
    object such as Gemini's generationConfig): nothing else of the body is decoded."""

    __slots__ = ("_raw",)

    def __init__(self, raw: dict[str, msgspec.Raw]) -> None:
        self._raw = raw

    def get(self, name: str) -> Any:
        raw = self._raw.get(name)
        if raw is None:
            return None
        if memoryview(raw)[0] == _OPEN_BRACE:   # (a raw JSON value is never empty)
            return RawFields(msgspec.json.decode(raw, type=dict[str, msgspec.Raw]))
        try:   # a scalar; an array (however deeply nested) is refused at its first byte, not walked
            return msgspec.json.decode(raw, type=int | float | str | bool | None)
        except msgspec.ValidationError:
            return _NOT_A_SCALAR


_NOT_A_SCALAR = ("not", "a", "scalar")   # what an array reads as: neither a number nor an object


def integer(value: Any, name: str, lowest: int, highest: int) -> int | None:
    """`value` as an integer in [lowest, highest], None when absent; anything else is a 400."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_request(f"'{name}' must be an integer", param=name)
    if not lowest <= value <= highest:
        raise invalid_request(f"'{name}' must be an integer from {lowest} to {highest:,}", param=name)
    return value


def _one_of(fields: Fields, names: tuple[str, str], where: str = "") -> tuple[Any, str]:
    """The value of a field that has two names; both given with different values is a 400."""
    first, second = fields.get(names[0]), fields.get(names[1])
    if first is not None and second is not None and (first != second or isinstance(first, (dict, RawFields))):
        raise invalid_request(f"'{where}{names[0]}' and '{where}{names[1]}' are the same setting, given twice "
                              "with different values: give one of them",
                              param=f"{where}{names[0]}")
    return (first, names[0]) if first is not None else (second, names[1])


def openai_chat(fields: Fields) -> Limits:
    value, name = _one_of(fields, ("max_completion_tokens", "max_tokens"))
    return Limits(integer(value, name, 1, MAX_OUTPUT_TOKENS), integer(fields.get("n"), "n", 1, MAX_CHOICES))


def anthropic_messages(fields: Fields, required: bool = True) -> Limits:
    value = fields.get("max_tokens")
    if value is None and required:
        raise invalid_request("max_tokens: Field required", param="max_tokens")
    return Limits(integer(value, "max_tokens", 0, MAX_OUTPUT_TOKENS), None)


GEMINI_CONFIG = ("generationConfig", "generation_config")


def gemini(body: Fields) -> Limits:
    config, _ = _one_of(body, GEMINI_CONFIG)
    if config is None:
        return Limits(None, None)
    if not isinstance(config, (dict, RawFields)):
        raise invalid_request("'generationConfig' must be an object", param="generationConfig")
    limit, name = _one_of(config, ("maxOutputTokens", "max_output_tokens"), "generationConfig.")
    count, count_name = _one_of(config, ("candidateCount", "candidate_count"), "generationConfig.")
    return Limits(integer(limit, f"generationConfig.{name}", 1, MAX_OUTPUT_TOKENS),
                  integer(count, f"generationConfig.{count_name}", 1, MAX_CHOICES))


RESPONSES_MIN_OUTPUT = 16   # the Responses API refuses less


def openai_responses(fields: Fields) -> Limits:
    return Limits(integer(fields.get("max_output_tokens"), "max_output_tokens", RESPONSES_MIN_OUTPUT,
                          MAX_OUTPUT_TOKENS), None)
