"""The official SDKs (OpenAI Chat and Responses, Anthropic, Gemini) driven the same way, so one test
can run every client x upstream pair.

Each adapter answers the same questions: a plain reply (streamed or not), a tool round trip, a
thinking round trip. What comes back is normalised into `Answer` for the assertions.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai
from google import genai
from google.genai import types

WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "description": "a city"}},
                  "required": ["city"]}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# 1x1 transparent PNG with a text chunk whose bytes (fb ff bf) make its base64 hold '+' and '/' (and
# '=' padding), as most real images' base64 does: google-genai sends such bytes URL-safe ('-', '_'),
# which OpenAI and Anthropic refuse unless the gateway re-encodes them (protocols.md §0)
_PLAIN_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
PNG_1X1 = _PLAIN_PNG[:33] + _png_chunk(b"tEXt", b"Comment\x00xx" + b"\xfb\xff\xbf" * 2) + _PLAIN_PNG[33:]
assert {"+", "/", "="} <= set(base64.b64encode(PNG_1X1).decode())


# Every SDK client the adapters open, closed after each test (conftest.py): left to the garbage
# collector, a client in a reference cycle may have its sockets finalized first, a ResourceWarning
# (an error in this suite) in whatever test happens to run then.
_OPEN: list[Any] = []


def close_all() -> None:
    while _OPEN:
        _OPEN.pop().close()


@dataclass
class Answer:
    text: str = ""
    thinking: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (name, args)
    finish: str = ""          # normalised: stop | length | tool_calls
    input_tokens: int = 0     # all prompt tokens, cached ones included
    output_tokens: int = 0    # all output tokens, reasoning included
    cached_tokens: int = 0
    cache_write_tokens: int = 0   # where the client's protocol can say so (not Gemini)
    reasoning_tokens: int = 0     # where the client's protocol can say so (not Anthropic)


class OpenAIClient:
    name = "openai"

    def __init__(self, base_url: str, key: str) -> None:
        self.sdk = openai.OpenAI(base_url=base_url + "/v1", api_key=key, max_retries=0)
        _OPEN.append(self.sdk)

    def ask(self, model: str, prompt: str, stream: bool, **extra: Any) -> Answer:
        messages = [{"role": "user", "content": prompt}]
        return self._answer(self._create(model, messages, stream, **extra))

    def _create(self, model: str, messages: list[Any], stream: bool, **extra: Any) -> Any:
        if not stream:
            return self.sdk.chat.completions.create(model=model, messages=messages, **extra)
        with self.sdk.chat.completions.stream(model=model, messages=messages,
                                              stream_options={"include_usage": True}, **extra) as s:
            return s.get_final_completion()

    def _answer(self, completion: Any) -> Answer:
        choice = completion.choices[0]
        message = choice.message
        extra = message.model_extra or {}
        usage = completion.usage
        prompt_details, completion_details = usage.prompt_tokens_details, usage.completion_tokens_details
        return Answer(text=message.content or "", thinking=extra.get("reasoning_content") or "",
                      tool_calls=[(c.function.name, json.loads(c.function.arguments))
                                  for c in message.tool_calls or []],
                      finish=choice.finish_reason, input_tokens=usage.prompt_tokens,
                      output_tokens=usage.completion_tokens,
                      cached_tokens=(prompt_details.cached_tokens or 0) if prompt_details else 0,
                      cache_write_tokens=(getattr(prompt_details, "cache_write_tokens", None) or 0)
                      if prompt_details else 0,
                      reasoning_tokens=(completion_details.reasoning_tokens or 0) if completion_details else 0)

    def tool_round_trip(self, model: str, stream: bool, **extra: Any) -> tuple[Answer, Answer]:
        tools = [{"type": "function", "function": {"name": "get_weather", "description": "weather of a city",
                                                   "parameters": WEATHER_SCHEMA}}]
        messages: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
        first = self._create(model, messages, stream, tools=tools, **extra)
        message = first.choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls or []:
            messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"})
        second = self._create(model, messages, stream, tools=tools, **extra)
        return self._answer(first), self._answer(second)

    def thinking_round_trip(self, model: str, stream: bool) -> tuple[Answer, Answer]:
        return self.tool_round_trip(model, stream, reasoning_effort="low")

    def image(self, model: str) -> Answer:
        url = "data:image/png;base64," + base64.b64encode(PNG_1X1).decode()
        return self._answer(self.sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": [
            {"type": "text", "text": "Describe this image."}, {"type": "image_url", "image_url": {"url": url}}]}]))

    def structured(self, model: str) -> Answer:
        return self._answer(self.sdk.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Weather as JSON"}],
            response_format={"type": "json_schema", "json_schema": {"name": "weather", "schema": WEATHER_SCHEMA}}))


class AnthropicClient:
    name = "anthropic"

    def __init__(self, base_url: str, key: str) -> None:
        self.sdk = anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0)
        _OPEN.append(self.sdk)

    def _create(self, stream: bool, **kw: Any) -> Any:
        kw.setdefault("max_tokens", 2048)
        if not stream:
            return self.sdk.messages.create(**kw)
        with self.sdk.messages.stream(**kw) as s:
            return s.get_final_message()

    def _answer(self, message: Any) -> Answer:
        finish = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length"}.get(message.stop_reason, "")
        usage = message.usage
        return Answer(
            text="".join(b.text for b in message.content if b.type == "text"),
            thinking="".join(b.thinking for b in message.content if b.type == "thinking"),
            tool_calls=[(b.name, b.input) for b in message.content if b.type == "tool_use"], finish=finish,
            input_tokens=usage.input_tokens + (usage.cache_read_input_tokens or 0)
            + (usage.cache_creation_input_tokens or 0), output_tokens=usage.output_tokens,
            cached_tokens=usage.cache_read_input_tokens or 0, cache_write_tokens=usage.cache_creation_input_tokens or 0)

    def ask(self, model: str, prompt: str, stream: bool, **extra: Any) -> Answer:
        return self._answer(self._create(stream, model=model, messages=[{"role": "user", "content": prompt}], **extra))

    def tool_round_trip(self, model: str, stream: bool, **extra: Any) -> tuple[Answer, Answer]:
        tools = [{"name": "get_weather", "description": "weather of a city", "input_schema": WEATHER_SCHEMA}]
        messages: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
        first = self._create(stream, model=model, messages=messages, tools=tools, **extra)
        messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": b.id, "content": "sunny, 21C"}
            for b in first.content if b.type == "tool_use"]})
        second = self._create(stream, model=model, messages=messages, tools=tools, **extra)
        return self._answer(first), self._answer(second)

    def thinking_round_trip(self, model: str, stream: bool) -> tuple[Answer, Answer]:
        return self.tool_round_trip(model, stream, thinking={"type": "enabled", "budget_tokens": 1024})

    def image(self, model: str) -> Answer:
        data = base64.b64encode(PNG_1X1).decode()
        return self._answer(self._create(False, model=model, messages=[{"role": "user", "content": [
            {"type": "text", "text": "Describe this image."},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}]}]))

    def structured(self, model: str) -> Answer:
        return self._answer(self._create(False, model=model, messages=[{"role": "user", "content": "Weather as JSON"}],
                                         output_config={"format": {"type": "json_schema", "schema": WEATHER_SCHEMA}}))


class GeminiClient:
    name = "gemini"

    def __init__(self, base_url: str, key: str) -> None:
        # google-genai calls /v1/models/{model}:generateContent by default
        self.sdk = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=base_url))
        _OPEN.append(self.sdk)

    def _create(self, model: str, contents: Any, stream: bool, config: types.GenerateContentConfig | None) -> Answer:
        if not stream:
            return self._answer([self.sdk.models.generate_content(model=model, contents=contents, config=config)])
        chunks = self.sdk.models.generate_content_stream(model=model, contents=contents, config=config)
        return self._answer(list(chunks))

    def _answer(self, responses: list[Any]) -> Answer:
        answer = Answer()
        for r in responses:
            for cand in r.candidates or []:
                for part in (cand.content.parts if cand.content else None) or []:
                    if part.thought:
                        answer.thinking += part.text or ""
                    elif part.function_call:
                        answer.tool_calls.append((part.function_call.name, dict(part.function_call.args or {})))
                    elif part.text:
                        answer.text += part.text
                if cand.finish_reason:
                    answer.finish = {"STOP": "stop", "MAX_TOKENS": "length"}.get(cand.finish_reason.name, "")
            if r.usage_metadata:
                answer.input_tokens = r.usage_metadata.prompt_token_count or 0
                answer.output_tokens = (r.usage_metadata.candidates_token_count or 0) + (
                    r.usage_metadata.thoughts_token_count or 0)
                answer.cached_tokens = r.usage_metadata.cached_content_token_count or 0
                answer.reasoning_tokens = r.usage_metadata.thoughts_token_count or 0
        if answer.tool_calls and answer.finish == "stop":
            answer.finish = "tool_calls"
        answer.raw = responses  # type: ignore[attr-defined]
        return answer

    def ask(self, model: str, prompt: str, stream: bool, **extra: Any) -> Answer:
        return self._create(model, prompt, stream, types.GenerateContentConfig(**extra) if extra else None)

    def tool_round_trip(self, model: str, stream: bool, **extra: Any) -> tuple[Answer, Answer]:
        config = types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=[types.FunctionDeclaration(
                name="get_weather", description="weather of a city", parameters_json_schema=WEATHER_SCHEMA)])],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True), **extra)
        question = types.Part.from_text(text="What is the weather in Paris?")
        contents: list[Any] = [types.Content(role="user", parts=[question])]
        first = self._create(model, contents, stream, config)
        model_parts = [p for r in first.raw for c in r.candidates or [] for p in (c.content.parts or [])]  # type: ignore[attr-defined]
        contents.append(types.Content(role="model", parts=model_parts))
        contents.append(types.Content(role="user", parts=[
            types.Part.from_function_response(name=name, response={"output": "sunny, 21C"})
            for name, _ in first.tool_calls]))
        second = self._create(model, contents, stream, config)
        return first, second

    def thinking_round_trip(self, model: str, stream: bool) -> tuple[Answer, Answer]:
        return self.tool_round_trip(model, stream, thinking_config=types.ThinkingConfig(
            include_thoughts=True, thinking_budget=1024))

    def image(self, model: str) -> Answer:
        return self._create(model, [types.Content(role="user", parts=[
            types.Part.from_text(text="Describe this image."),
            types.Part.from_bytes(data=PNG_1X1, mime_type="image/png")])], False, None)

    def structured(self, model: str) -> Answer:
        return self._create(model, "Weather as JSON", False, types.GenerateContentConfig(
            response_mime_type="application/json", response_json_schema=WEATHER_SCHEMA))


class ResponsesClient:
    """The Responses API through the `openai` SDK's `client.responses`: the conversation is the list of
    input items, each turn's output items replayed as they came (store false, as Codex does: nothing
    lives upstream between turns, so reasoning items come back with their encrypted_content)."""

    name = "responses"

    def __init__(self, base_url: str, key: str) -> None:
        self.sdk = openai.OpenAI(base_url=base_url + "/v1", api_key=key, max_retries=0)
        _OPEN.append(self.sdk)

    def _create(self, stream: bool, **kw: Any) -> Any:
        if not stream:
            return self.sdk.responses.create(**kw)
        with self.sdk.responses.stream(**kw) as s:
            return s.get_final_response()

    def _answer(self, response: Any) -> Answer:
        calls = [i for i in response.output if i.type == "function_call"]
        finish = "length" if response.status == "incomplete" else "tool_calls" if calls else "stop"
        usage = response.usage
        inp, out = usage.input_tokens_details, usage.output_tokens_details
        return Answer(
            text=response.output_text,
            thinking="".join(s.text for i in response.output if i.type == "reasoning" for s in i.summary)
            + "".join(c.text for i in response.output if i.type == "reasoning" for c in i.content or []),
            tool_calls=[(c.name, json.loads(c.arguments)) for c in calls], finish=finish,
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cached_tokens=(inp.cached_tokens or 0) if inp else 0,
            cache_write_tokens=(getattr(inp, "cache_write_tokens", None) or 0) if inp else 0,
            reasoning_tokens=(out.reasoning_tokens or 0) if out else 0)

    def ask(self, model: str, prompt: str, stream: bool, **extra: Any) -> Answer:
        return self._answer(self._create(stream, model=model, input=prompt, **extra))

    def tool_round_trip(self, model: str, stream: bool, **extra: Any) -> tuple[Answer, Answer]:
        tools = [{"type": "function", "name": "get_weather", "description": "weather of a city",
                  "parameters": WEATHER_SCHEMA, "strict": False}]
        items: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
        first = self._create(stream, model=model, input=items, tools=tools, store=False, **extra)
        items += [i.model_dump(exclude_none=True) for i in first.output]
        items += [{"type": "function_call_output", "call_id": i.call_id, "output": "sunny, 21C"}
                  for i in first.output if i.type == "function_call"]
        second = self._create(stream, model=model, input=items, tools=tools, store=False, **extra)
        return self._answer(first), self._answer(second)

    def thinking_round_trip(self, model: str, stream: bool) -> tuple[Answer, Answer]:
        return self.tool_round_trip(model, stream, reasoning={"effort": "low", "summary": "auto"},
                                    include=["reasoning.encrypted_content"])

    def image(self, model: str) -> Answer:
        url = "data:image/png;base64," + base64.b64encode(PNG_1X1).decode()
        return self._answer(self._create(False, model=model, input=[{"role": "user", "content": [
            {"type": "input_text", "text": "Describe this image."},
            {"type": "input_image", "image_url": url, "detail": "auto"}]}]))

    def structured(self, model: str) -> Answer:
        return self._answer(self._create(False, model=model, input="Weather as JSON", text={"format": {
            "type": "json_schema", "name": "weather", "schema": WEATHER_SCHEMA}}))


@dataclass(frozen=True)
class ProtocolRow:
    """What the tests need of one client protocol to drive it over HTTP."""

    surface: str                 # the short name tests, SDK adapters and channel `type`s use
    sdk: type[Any]               # the adapter (above) driving its official SDK
    model: str                   # a model conftest.main_config serves over a channel speaking the protocol
    chat_path: str               # the route of one chat-like request ({model} filled in)
    key_header: str              # how the client sends its key ("Name: value", {key} filled in)


# The one table of per-protocol test data, keyed by the names of polyrelay.protocols.registry.PROTOCOLS:
# tests/unit/test_protocol_tables.py fails until a new protocol has its row.
PROTOCOL_ROWS = {
    "openai_chat": ProtocolRow("openai", OpenAIClient, "gpt-4o-mini", "/v1/chat/completions",
                               "Authorization: Bearer {key}"),
    "anthropic_messages": ProtocolRow("anthropic", AnthropicClient, "claude-sim-sonnet", "/v1/messages",
                                      "x-api-key: {key}"),
    "gemini": ProtocolRow("gemini", GeminiClient, "gemini-2.5-flash", "/v1beta/models/{model}:generateContent",
                          "x-goog-api-key: {key}"),
    "openai_responses": ProtocolRow("responses", ResponsesClient, "gpt-resp-mini", "/v1/responses",
                                    "Authorization: Bearer {key}"),
}
CLIENTS = {row.surface: row.sdk for row in PROTOCOL_ROWS.values()}   # by surface name, as tests name clients
