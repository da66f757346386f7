"""Client requests for the golden conversion cases, one set per client protocol.

`python tests/golden_cases.py` (re)writes tests/golden/<client>__<upstream>/<case>/ from these
requests, the current converters and the simulator's answers; review the diff before committing.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"
PNG = base64.b64encode(bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                                     "1f15c4890000000d49444154789c6360f8cfc0000003010100c9fe92ef00"
                                     "00000049454e44ae426082")).decode()
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOL_PARAMS = {"type": "object", "properties": {"city": {"type": "string", "description": "a city"}},
               "required": ["city"]}

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
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": TOOL_PARAMS}}]},
    "image": {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}]},
    "thinking": {"model": "m", "reasoning_effort": "medium", "max_completion_tokens": 4000,
                 "messages": [{"role": "user", "content": "Think [[sim:words=3]]"}]},
    "structured": {"model": "m", "messages": [{"role": "user", "content": "Weather as JSON"}],
                   "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": SCHEMA}}},
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
    "thinking": {"contents": [{"role": "user", "parts": [{"text": "Think [[sim:words=3]]"}]}],
                 "generationConfig": {"maxOutputTokens": 4000,
                                      "thinking_config": {"thinking_budget": 2048, "include_thoughts": True}}},
    "structured": {"contents": [{"role": "user", "parts": [{"text": "Weather as JSON"}]}],
                   "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA}},
}

CLIENTS = {"openai_chat": OPENAI, "anthropic_messages": ANTHROPIC, "gemini": GEMINI}
UPSTREAMS = ["openai_chat", "anthropic_messages", "gemini"]


def write_all() -> None:
    from test_golden import expected_outputs

    for client, cases in CLIENTS.items():
        for upstream in UPSTREAMS:
            for case, request in cases.items():
                folder = GOLDEN / f"{client}__{upstream}" / case
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "client_request.json").write_text(json.dumps(request, indent=1) + "\n")
                for name, content in expected_outputs(client, upstream, request).items():
                    (folder / name).write_bytes(content)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    write_all()
