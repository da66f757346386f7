"""Web search through the IR, unit by unit: citation offsets (UTF-8 bytes in the IR, characters for
OpenAI clients), grounding without a query, and the targets that cannot search."""

from __future__ import annotations

import json

import msgspec
import pytest

from polyrelay import ir
from polyrelay.errors import GatewayError
from polyrelay.protocols import gemini, openai_chat, openai_responses
from polyrelay.protocols._common import cannot_search, char_span

TEXT = "Zürich ☕ 5 €. 東京 🗼!"


def _gemini_answer(meta: dict[str, object], parts: list[str]) -> bytes:
    return msgspec.json.encode({"candidates": [{"content": {"role": "model", "parts": [{"text": p} for p in parts]},
                                                "finishReason": "STOP", "groundingMetadata": meta}],
                                "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 7}})


def test_char_span_turns_bytes_into_characters() -> None:
    data = TEXT.encode()
    tokyo = data.index("東京".encode())
    assert char_span(ir.Citation("u", None, tokyo, len(data)), data) == (TEXT.index("東京"), len(TEXT))
    assert char_span(ir.Citation("u", None, 0, len("Zürich".encode())), data) == (0, 6)
    assert char_span(ir.Citation("u", None, len(data), len(data) + 4), data) is None   # outside the text


def test_gemini_grounding_across_text_parts_becomes_character_annotations() -> None:
    """Segment offsets are bytes of the candidate's whole text (startIndex absent when 0); the text
    comes in two parts, the second citation inside the second part."""
    first, second = "Zürich ☕ 5 €. ", "東京 🗼!"
    start = len(first.encode())
    meta = {"webSearchQueries": ["coffee"], "groundingChunks": [{"web": {"uri": "https://a", "title": "A"}},
                                                                 {"web": {"uri": "https://b", "title": "B"}}],
            "groundingSupports": [{"segment": {"endIndex": start}, "groundingChunkIndices": [0]},
                                  {"segment": {"startIndex": start, "endIndex": start + len("東京".encode())},
                                   "groundingChunkIndices": [1]}]}
    resp = gemini.parse_response(_gemini_answer(meta, [first, second]))
    assert resp.usage.web_searches == 1
    out = json.loads(openai_responses.render_response(resp, "m"))["output"]
    assert [o["type"] for o in out] == ["web_search_call", "message"]
    assert out[0]["action"]["query"] == "coffee"
    text = out[1]["content"][0]["text"]
    assert [(a["url"], text[a["start_index"]:a["end_index"]]) for a in out[1]["content"][0]["annotations"]] == [
        ("https://a", first), ("https://b", "東京")]
    chat = json.loads(openai_chat.render_response(resp, "m"))["choices"][0]["message"]
    assert [(a["url_citation"]["url"], chat["content"][a["url_citation"]["start_index"]:a["url_citation"]["end_index"]])
            for a in chat["annotations"]] == [("https://a", first), ("https://b", "東京")]


def test_gemini_grounding_without_a_query_is_no_search() -> None:
    meta = {"groundingChunks": [{"web": {"uri": "https://a", "title": "A"}}],
            "groundingSupports": [{"segment": {"endIndex": 3}, "groundingChunkIndices": [0]}]}
    resp = gemini.parse_response(_gemini_answer(meta, [TEXT]))
    assert resp.usage.web_searches == 0
    out = json.loads(openai_responses.render_response(resp, "m"))["output"]
    assert [o["type"] for o in out] == ["message"] and len(out[0]["content"][0]["annotations"]) == 1


def test_responses_upstream_annotations_come_back_in_the_same_characters() -> None:
    """A Responses upstream counts characters; the IR bytes; a Chat client characters again."""
    body = {"id": "resp_1", "status": "completed", "output": [
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "q"}},
        {"type": "message", "id": "msg_1", "role": "assistant", "content": [{"type": "output_text", "text": TEXT,
         "annotations": [{"type": "url_citation", "url": "https://b", "title": "B", "start_index": 14,
                          "end_index": 16}]}]}], "usage": {"input_tokens": 3, "output_tokens": 4}}
    resp = openai_responses.parse_response(msgspec.json.encode(body))
    assert resp.usage.web_searches == 1
    message = json.loads(openai_chat.render_response(resp, "m"))["choices"][0]["message"]
    [a] = message["annotations"]
    assert message["content"][a["url_citation"]["start_index"]:a["url_citation"]["end_index"]] == TEXT[14:16] == "東京"


def test_a_target_that_cannot_search_refuses_a_forced_search_and_reports_an_offered_one() -> None:
    with pytest.raises(GatewayError) as caught:
        cannot_search(ir.Request(model="m", web_search=ir.WebSearch(forced=True)), "OpenAI Chat")
    assert (caught.value.status, caught.value.param) == (400, "tool_choice")
    req = openai_responses.parse_request(msgspec.json.encode(
        {"model": "m", "input": "x", "tools": [{"type": "web_search_preview"}]}))
    body, losses = openai_chat.render_request(req, "gpt")
    assert "tools" not in json.loads(body)
    assert [(x.field, x.what) for x in losses] == [("web_search", "dropped")]
