"""Client requests for the golden conversion cases, one set per client protocol.

`python tests/golden_cases.py` (re)writes tests/golden/<client>__<upstream>/<case>/ from these
requests, the current converters and the simulator's answers; review the diff before committing.
`python tests/golden_cases.py sampling json_object` writes only the cases named.
"""

from __future__ import annotations

import base64
import json
import sys
import zlib
from pathlib import Path

from polyrelay.protocols.registry import PROTOCOLS

GOLDEN = Path(__file__).parent / "golden"
PNG = base64.b64encode(bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                                     "1f15c4890000000d49444154789c6360f8cfc0000003010100c9fe92ef00"
                                     "00000049454e44ae426082")).decode()
# the same PNG with a text chunk whose bytes (fb ff bf) give '+' and '/' in base64, sent URL-safe ('-', '_')
_TEXT = b"tEXtComment\x00xx" + b"\xfb\xff\xbf" * 2
PNG_URLSAFE = base64.urlsafe_b64encode(
    base64.b64decode(PNG)[:33] + (len(_TEXT) - 4).to_bytes(4, "big") + _TEXT + zlib.crc32(_TEXT).to_bytes(4, "big")
    + base64.b64decode(PNG)[33:]).decode()
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOL_PARAMS = {"type": "object", "properties": {"city": {"type": "string", "description": "a city"}},
               "required": ["city"]}
TIME_PARAMS = {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]}
IMAGE_URL = "https://example.com/cat.png"
OPENAI_TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": TOOL_PARAMS}},
                {"type": "function", "function": {"name": "get_time", "parameters": TIME_PARAMS}}]
ANTHROPIC_TOOLS = [{"name": "get_weather", "input_schema": TOOL_PARAMS},
                   {"name": "get_time", "input_schema": TIME_PARAMS}]
GEMINI_TOOLS = [{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": TOOL_PARAMS},
                                          {"name": "get_time", "parametersJsonSchema": TIME_PARAMS}]}]

OPENAI = {
    "text": {"model": "m", "temperature": 0.5, "stop": ["END"], "max_tokens": 200, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi [[sim:words=4]]"},
        {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Again [[sim:words=4]]"}]},
    "tools": {"model": "m", "messages": [{"role": "user", "content": "Weather in Paris?"}],
              "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": TOOL_PARAMS}}],
              "tool_choice": "auto", "parallel_tool_calls": False},
    "tool_result": {"model": "m", "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": TOOL_PARAMS}}]},
    "image": {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}]},
    "thinking": {"model": "m", "reasoning_effort": "medium", "max_completion_tokens": 4000,
                 "messages": [{"role": "user", "content": "Think [[sim:words=3]]"}]},
    "structured": {"model": "m", "messages": [{"role": "user", "content": "Weather as JSON"}],
                   "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": SCHEMA}}},
    # OpenAI Chat has no top_k: left out
    "sampling": {"model": "m", "temperature": 0.7, "top_p": 0.9, "max_tokens": 150, "seed": 42,
                 "stop": ["END", "STOP"], "messages": [
        {"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour [[sim:words=3]]"},
        {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another"},
        {"role": "assistant", "content": "Green."}, {"role": "user", "content": "One more"}]},
    # "both" makes the simulator call the first two tools in one answer
    "parallel_tools": {"model": "m", "messages": [{"role": "user", "content": "Weather and time in Paris? Call both."}],
                       "tools": OPENAI_TOOLS, "tool_choice": "auto", "parallel_tool_calls": True},
    "parallel_tool_results": {"model": "m", "messages": [
        {"role": "user", "content": "Weather in Paris and London?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_b", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"London\"}"}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_b", "content": "rainy"}], "tools": OPENAI_TOOLS},
    "json_object": {"model": "m", "messages": [{"role": "user", "content": "Describe Paris as a JSON object."}],
                    "response_format": {"type": "json_object"}},
    "image_url": {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": IMAGE_URL}}]}]},
}

ANTHROPIC = {
    "text": {"model": "m", "max_tokens": 200, "temperature": 0.5, "stop_sequences": ["END"], "system": "Be brief.",
             "messages": [{"role": "user", "content": "Hi [[sim:words=4]]"}, {"role": "assistant", "content": "Hello."},
                          {"role": "user", "content": "Again [[sim:words=4]]"}]},
    "tools": {"model": "m", "max_tokens": 200, "messages": [{"role": "user", "content": "Weather in Paris?"}],
              "tools": [{"name": "get_weather", "input_schema": TOOL_PARAMS}],
              "tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
    "tool_result": {"model": "m", "max_tokens": 200, "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]}],
        "tools": [{"name": "get_weather", "input_schema": TOOL_PARAMS}]},
    "image": {"model": "m", "max_tokens": 200, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}]},
    "thinking": {"model": "m", "max_tokens": 4000, "thinking": {"type": "enabled", "budget_tokens": 2048},
                 "messages": [{"role": "user", "content": "Think [[sim:words=3]]"}]},
    "structured": {"model": "m", "max_tokens": 200, "messages": [{"role": "user", "content": "Weather as JSON"}],
                   "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
    # Anthropic Messages has no seed: left out
    "sampling": {"model": "m", "max_tokens": 150, "temperature": 0.7, "top_p": 0.9, "top_k": 40,
                 "stop_sequences": ["END", "STOP"], "system": [{"type": "text", "text": "You are terse."}],
                 "messages": [{"role": "user", "content": "Name a colour [[sim:words=3]]"},
                              {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another"},
                              {"role": "assistant", "content": "Green."}, {"role": "user", "content": "One more"}]},
    "parallel_tools": {"model": "m", "max_tokens": 200,
                       "messages": [{"role": "user", "content": "Weather and time in Paris? Call both."}],
                       "tools": ANTHROPIC_TOOLS, "tool_choice": {"type": "auto"}},
    "parallel_tool_results": {"model": "m", "max_tokens": 200, "messages": [
        {"role": "user", "content": "Weather in Paris and London?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking both cities."},
            {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {"city": "London"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_a", "content": "sunny"},
                                     {"type": "tool_result", "tool_use_id": "toolu_b", "content": "rainy"}]}],
        "tools": ANTHROPIC_TOOLS},
    # json_object: Anthropic Messages has no JSON mode without a schema, so there is no client case
    "image_url": {"model": "m", "max_tokens": 200, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image", "source": {"type": "url", "url": IMAGE_URL}}]}]},
}

GEMINI = {
    "text": {"systemInstruction": {"parts": [{"text": "Be brief."}]},
             "generationConfig": {"temperature": 0.5, "stopSequences": ["END"], "maxOutputTokens": 200},
             "contents": [{"role": "user", "parts": [{"text": "Hi [[sim:words=4]]"}]},
                          {"role": "model", "parts": [{"text": "Hello."}]},
                          {"role": "user", "parts": [{"text": "Again [[sim:words=4]]"}]}]},
    "tools": {"contents": [{"role": "user", "parts": [{"text": "Weather in Paris?"}]}],
              "tools": [{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": TOOL_PARAMS}]}],
              "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}}},
    "tool_result": {"contents": [
        {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}}]}],
        "tools": [{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": TOOL_PARAMS}]}]},
    "image": {"contents": [{"role": "user", "parts": [
        {"text": "What is this?"}, {"inline_data": {"mime_type": "image/png", "data": PNG}}]}]},
    # google-genai 3.x sends bytes in URL-safe base64; other upstreams must get the standard alphabet
    "image_urlsafe": {"contents": [{"role": "user", "parts": [
        {"text": "What is this?"}, {"inline_data": {"mime_type": "image/png", "data": PNG_URLSAFE}}]}]},
    "thinking": {"contents": [{"role": "user", "parts": [{"text": "Think [[sim:words=3]]"}]}],
                 "generationConfig": {"maxOutputTokens": 4000,
                                      "thinking_config": {"thinking_budget": 2048, "include_thoughts": True}}},
    "structured": {"contents": [{"role": "user", "parts": [{"text": "Weather as JSON"}]}],
                   "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA}},
    "sampling": {"systemInstruction": {"parts": [{"text": "You are terse."}]},
                 "generationConfig": {"temperature": 0.7, "topP": 0.9, "topK": 40, "maxOutputTokens": 150,
                                      "seed": 42, "stopSequences": ["END", "STOP"]},
                 "contents": [{"role": "user", "parts": [{"text": "Name a colour [[sim:words=3]]"}]},
                              {"role": "model", "parts": [{"text": "Blue."}]},
                              {"role": "user", "parts": [{"text": "Another"}]},
                              {"role": "model", "parts": [{"text": "Green."}]},
                              {"role": "user", "parts": [{"text": "One more"}]}]},
    "parallel_tools": {"contents": [{"role": "user", "parts": [{"text": "Weather and time in Paris? Call both."}]}],
                       "tools": GEMINI_TOOLS, "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}}},
    # no ids: Gemini pairs each functionResponse with its call by name and order
    "parallel_tool_results": {"contents": [
        {"role": "user", "parts": [{"text": "Weather in Paris and London?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                                    {"functionCall": {"name": "get_weather", "args": {"city": "London"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}},
                                   {"functionResponse": {"name": "get_weather", "response": {"output": "rainy"}}}]}],
        "tools": GEMINI_TOOLS},
    "json_object": {"contents": [{"role": "user", "parts": [{"text": "Describe Paris as a JSON object."}]}],
                    "generationConfig": {"responseMimeType": "application/json"}},
    # a public https URL as fileData (the Gemini API fetches it itself)
    "image_url": {"contents": [{"role": "user", "parts": [
        {"text": "What is this?"}, {"fileData": {"mimeType": "image/png", "fileUri": IMAGE_URL}}]}]},
}

RESPONSES_TOOLS = [{"type": "function", "name": "get_weather", "parameters": TOOL_PARAMS},
                   {"type": "function", "name": "get_time", "parameters": TIME_PARAMS}]
RESPONSES = {
    "text": {"model": "m", "temperature": 0.5, "max_output_tokens": 200, "instructions": "Be brief.", "input": [
        {"role": "user", "content": "Hi [[sim:words=4]]"}, {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Again [[sim:words=4]]"}]},
    "tools": {"model": "m", "input": "Weather in Paris?", "tools": RESPONSES_TOOLS[:1], "tool_choice": "auto",
              "parallel_tool_calls": False},
    "tool_result": {"model": "m", "tools": RESPONSES_TOOLS[:1], "input": [
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
         "arguments": "{\"city\":\"Paris\"}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}]},
    "image": {"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"}]}]},
    "thinking": {"model": "m", "reasoning": {"effort": "medium", "summary": "auto"}, "max_output_tokens": 4000,
                 "include": ["reasoning.encrypted_content"], "store": False,
                 "input": [{"role": "user", "content": "Think [[sim:words=3]]"}]},
    "structured": {"model": "m", "input": "Weather as JSON",
                   "text": {"format": {"type": "json_schema", "name": "w", "schema": SCHEMA}}},
    # Responses has no stop, seed or top_k: left out
    "sampling": {"model": "m", "temperature": 0.7, "top_p": 0.9, "max_output_tokens": 150, "input": [
        {"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour [[sim:words=3]]"},
        {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another"},
        {"role": "assistant", "content": "Green."}, {"role": "user", "content": "One more"}]},
    "parallel_tools": {"model": "m", "input": "Weather and time in Paris? Call both.", "tools": RESPONSES_TOOLS,
                       "tool_choice": "auto", "parallel_tool_calls": True},
    "parallel_tool_results": {"model": "m", "tools": RESPONSES_TOOLS, "input": [
        {"role": "user", "content": "Weather in Paris and London?"},
        {"type": "function_call", "call_id": "call_a", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
        {"type": "function_call", "call_id": "call_b", "name": "get_weather", "arguments": "{\"city\":\"London\"}"},
        {"type": "function_call_output", "call_id": "call_a", "output": "sunny"},
        {"type": "function_call_output", "call_id": "call_b", "output": "rainy"}]},
    "json_object": {"model": "m", "input": "Describe Paris as a JSON object.",
                    "text": {"format": {"type": "json_object"}}},
    "image_url": {"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"}, {"type": "input_image", "image_url": IMAGE_URL}]}]},
    # what @openai/codex sends (protocols.md 5.5): developer messages, client item ids, a custom tool (its
    # call comes back as a custom_tool_call), tool_search run by the client, web_search (dropped)
    "codex": {"model": "m", "store": False, "include": ["reasoning.encrypted_content"],
              "prompt_cache_key": "0199-session", "client_metadata": {"originator": "codex_exec"},
              "text": {"verbosity": "low"}, "parallel_tool_calls": False, "tool_choice": "auto",
              "input": [{"type": "message", "id": "msg_0b1c", "role": "developer",
                         "content": [{"type": "input_text", "text": "You are Codex."}]},
                        {"type": "message", "id": "msg_1f2e", "role": "user",
                         "content": [{"type": "input_text", "text": "Apply a patch."}]}],
              "tools": [{"type": "custom", "name": "apply_patch", "description": "Apply a patch.",
                         "format": {"type": "grammar", "syntax": "lark", "definition": "start: /(.|\\n)*/"}},
                        {"type": "tool_search", "execution": "client"},
                        {"type": "web_search", "external_web_access": False}]},
    # web search: Anthropic's server tool, Gemini's grounding, left out for Chat; the answer's text is
    # multi-byte, so its url_citation offsets (characters) differ from the upstream's (bytes)
    "web_search": {"model": "m", "input": "Coffee in Zürich and Tokyo? [[sim:search]]", "tools": [
        {"type": "web_search", "user_location": {"type": "approximate", "country": "CH"}}]},
}

# the client requests by protocol name: tests/unit/test_protocol_tables.py checks every protocol has its set
CLIENTS = {"openai_chat": OPENAI, "anthropic_messages": ANTHROPIC, "gemini": GEMINI, "openai_responses": RESPONSES}
UPSTREAMS = list(PROTOCOLS)
# a Responses client on a Responses channel takes the fast path (tests/e2e/test_responses_api.py)
SKIP_PAIRS = {("openai_responses", "openai_responses")}
# Cases that cannot run against some upstreams in this offline harness. image_url: for a Gemini channel
# the gateway downloads http(s) URLs and inlines the bytes before converting (relay/convert_path.py,
# polyrelay.upstream.media, tested in tests/e2e/test_media.py); the golden harness converts without
# network, so only upstreams that take the URL as it is are covered here.
SKIP_UPSTREAMS = {"image_url": {"gemini"}}


def write_all(only: set[str] | None = None) -> None:
    """Write every case, or only the cases named in `only`."""
    from test_golden import expected_outputs

    for client in PROTOCOLS:
        for upstream in UPSTREAMS:
            for case, request in CLIENTS[client].items():
                if ((only and case not in only) or upstream in SKIP_UPSTREAMS.get(case, ())
                        or (client, upstream) in SKIP_PAIRS):
                    continue
                folder = GOLDEN / f"{client}__{upstream}" / case
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "client_request.json").write_text(json.dumps(request, indent=1) + "\n")
                for name, content in expected_outputs(client, upstream, request).items():
                    (folder / name).write_bytes(content)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent / "conversion"))   # test_golden
    write_all(set(sys.argv[1:]) or None)
