"""Fields a converted request cannot carry: dropped and reported (the `ir.Loss` list that
render_request returns, which the gateway sends in `x-polyrelay-dropped` and keeps in the request
log), or refused with a 400 in the client's own error shape (docs/conversion.md, "Requests")."""

from __future__ import annotations

import json
from typing import Any

import pytest

from polyrelay import ir
from polyrelay.errors import GatewayError
from polyrelay.protocols import anthropic_messages, gemini, openai_chat

MESSAGES = [{"role": "user", "content": "x"}]
CONTENTS = [{"role": "user", "parts": [{"text": "x"}]}]


def _chat(**fields: Any) -> bytes:
    return json.dumps({"model": "m", "messages": MESSAGES, **fields}).encode()


def _gemini(**fields: Any) -> bytes:
    return json.dumps({"contents": CONTENTS, **fields}).encode()


class Lost(list[str]):
    """The losses of the renders a test made, as `field: what (why)`."""

    def render(self, upstream: Any, req: ir.Request, model: str) -> bytes:
        body, losses = upstream.render_request(req, model)
        self.extend(f"{loss.field}: {loss.what} ({loss.why})" for loss in losses)
        return body  # type: ignore[no-any-return]


@pytest.fixture
def lost() -> Lost:
    return Lost()


# ---- OpenAI Chat client -> Anthropic / Gemini -------------------------------------------------


@pytest.mark.parametrize("field, value", [
    ("logit_bias", {"50256": -100}), ("prediction", {"type": "content", "content": "draft"}),
    ("service_tier", "flex"),
])
@pytest.mark.parametrize("upstream", [anthropic_messages, gemini])
def test_chat_fields_the_client_can_live_without_are_dropped_with_a_warning(
        lost: Lost, field: str, value: Any, upstream: Any) -> None:
    out = json.loads(lost.render(upstream, openai_chat.parse_request(_chat(**{field: value})), "up"))
    assert field not in json.dumps(out)
    assert any(field in r and "dropped" in r for r in lost)


def _refused(parse: Any, body: bytes, param: str) -> GatewayError:
    """The 400 that `parse(body)` raises, naming `param`."""
    with pytest.raises(GatewayError) as info:
        parse(body)
    assert (info.value.status, info.value.kind, info.value.param) == (400, "invalid_request", param)
    return info.value

@pytest.mark.parametrize("fields, param", [
    ({"logprobs": True}, "logprobs"), ({"logprobs": True, "top_logprobs": 3}, "logprobs"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}}, "audio"),
    ({"modalities": ["text", "audio"]}, "modalities"),
])
def test_chat_fields_the_client_depends_on_are_a_400(fields: dict[str, Any], param: str) -> None:
    err = _refused(openai_chat.parse_request, _chat(**fields), param)
    status, body = openai_chat.render_error(err)
    error = json.loads(body)["error"]
    assert status == 400 and error["type"] == "invalid_request_error" and error["param"] == param
    assert param in error["message"] or "audio" in error["message"]


def test_chat_logprobs_to_gemini_is_a_400_in_the_chat_shape(lost: Lost) -> None:
    with pytest.raises(GatewayError) as info:
        lost.render(gemini, openai_chat.parse_request(_chat(logprobs=True)), "gemini-2.5-flash")
    assert info.value.status == 400 and "log probabilities" in info.value.message


def test_chat_harmless_metadata_and_defaults_are_not_warned_about(lost: Lost) -> None:
    quiet = {"logprobs": False, "top_logprobs": 0, "modalities": ["text"], "store": True,
             "metadata": {"run": "7"}, "user": "u1", "service_tier": None}
    req = openai_chat.parse_request(_chat(**quiet, logit_bias={"1": 5}))
    anthropic = json.loads(lost.render(anthropic_messages, req, "claude-haiku-4-5"))
    assert anthropic["metadata"] == {"user_id": "u1"}
    json.loads(lost.render(gemini, req, "gemini-2.5-flash"))
    assert set(lost) == {"logit_bias: dropped (no equivalent in Anthropic or Gemini channels)"}


def test_parallel_tool_calls_false_to_gemini_is_dropped_with_a_warning(lost: Lost) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    req = openai_chat.parse_request(_chat(tools=tools, parallel_tool_calls=False))
    out = json.loads(lost.render(gemini, req, "gemini-2.5-flash"))
    assert out["tools"][0]["functionDeclarations"][0]["name"] == "f"
    assert any("parallel_tool_calls" in r for r in lost)
    lost.clear()
    anthropic = json.loads(lost.render(anthropic_messages, req, "claude-haiku-4-5"))
    assert anthropic["tool_choice"]["disable_parallel_tool_use"] is True and lost == []


# ---- stop sequences over the target's limit ----------------------------------------------------


def test_six_stop_sequences_to_openai_keep_four_and_warn(lost: Lost) -> None:
    stops = [f"S{i}" for i in range(6)]
    req = anthropic_messages.parse_request(json.dumps(
        {"model": "m", "max_tokens": 10, "messages": MESSAGES, "stop_sequences": stops}).encode())
    out = json.loads(lost.render(openai_chat, req, "gpt-4o"))
    assert out["stop"] == stops[:4]
    assert any("stop" in r and "S4" in r for r in lost)


def test_six_stop_sequences_to_gemini_keep_five_and_warn(lost: Lost) -> None:
    stops = [f"S{i}" for i in range(6)]
    out = json.loads(lost.render(gemini, openai_chat.parse_request(_chat(stop=stops[:4])), "g"))
    assert out["generationConfig"]["stopSequences"] == stops[:4] and lost == []
    req = anthropic_messages.parse_request(json.dumps(
        {"model": "m", "max_tokens": 10, "messages": MESSAGES, "stop_sequences": stops}).encode())
    out = json.loads(lost.render(gemini, req, "g"))
    assert out["generationConfig"]["stopSequences"] == stops[:5]
    assert any("stop" in r and "S5" in r for r in lost)


# ---- Gemini client -> OpenAI / Anthropic -------------------------------------------------------


@pytest.mark.parametrize("key", ["safetySettings", "safety_settings"])
@pytest.mark.parametrize("upstream", [openai_chat, anthropic_messages])
def test_gemini_safety_settings_are_dropped_with_a_warning(
        lost: Lost, key: str, upstream: Any) -> None:
    settings = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    req = gemini.parse_request(_gemini(**{key: settings}))
    req.model = "m"
    out = lost.render(upstream, req, "up")
    assert b"HARM_CATEGORY" not in out
    assert any("safetySettings" in r and "dropped" in r for r in lost)


@pytest.mark.parametrize("config, param", [
    ({"responseLogprobs": True}, "generationConfig.responseLogprobs"),
    ({"response_logprobs": True, "logprobs": 3}, "generationConfig.responseLogprobs"),
    ({"logprobs": 2}, "generationConfig.logprobs"),
])
def test_gemini_logprobs_are_a_400_in_the_gemini_shape(config: dict[str, Any], param: str) -> None:
    status, body = gemini.render_error(_refused(gemini.parse_request, _gemini(generationConfig=config), param))
    assert status == 400 and json.loads(body)["error"]["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize("key", ["cachedContent", "cached_content"])
def test_gemini_cached_content_is_a_400(key: str) -> None:
    with pytest.raises(GatewayError) as info:
        gemini.parse_request(_gemini(**{key: "cachedContents/abc123"}))
    assert (info.value.status, info.value.param) == (400, "cachedContent")
    assert "cachedContent" in info.value.message


def test_gemini_refusals_are_for_generate_content_only(lost: Lost) -> None:
    req = gemini.parse_request(_gemini(generationConfig={"responseLogprobs": False, "logprobs": 0}, safetySettings=[]))
    assert req.losses == [] and lost == []
    inner = {"contents": CONTENTS, "generationConfig": {"responseLogprobs": True}, "cachedContent": "cachedContents/a"}
    with pytest.raises(GatewayError):
        gemini.parse_request(json.dumps(inner).encode())
    # countTokens goes to a Gemini channel as the client wrote it (or is estimated): nothing to refuse
    req = gemini.parse_count_tokens_request(json.dumps({"generateContentRequest": inner}).encode())
    assert req.messages


# ---- Claude models that refuse temperature and top_p together ---------------------------------

BOTH_REFUSED = ["claude-opus-4-1", "claude-opus-4-1-20250805", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929",
                "claude-haiku-4-5", "claude-opus-4-5", "claude-sonnet-4-6", "claude-opus-4-6",
                "anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5@20250929"]
BOTH_ACCEPTED = ["claude-opus-4-20250514", "claude-sonnet-4-20250514", "claude-3-7-sonnet-20250219",
                 "claude-3-5-haiku-20241022"]


@pytest.mark.parametrize("model", BOTH_REFUSED)
@pytest.mark.parametrize("client", ["chat", "gemini"])
def test_temperature_and_top_p_together_keep_temperature_for_claude_4_5_and_opus_4_1(
        lost: Lost, model: str, client: str) -> None:
    if client == "chat":
        req = openai_chat.parse_request(_chat(temperature=0.3, top_p=0.9))
    else:
        req = gemini.parse_request(_gemini(generationConfig={"temperature": 0.3, "topP": 0.9}))
    out = json.loads(lost.render(anthropic_messages, req, model))
    assert out["temperature"] == 0.3 and "top_p" not in out
    assert any("top_p" in r and "dropped" in r for r in lost)


@pytest.mark.parametrize("model", BOTH_ACCEPTED)
def test_temperature_and_top_p_together_go_to_older_claude_models(
        lost: Lost, model: str) -> None:
    out = json.loads(lost.render(anthropic_messages,
        openai_chat.parse_request(_chat(temperature=0.3, top_p=0.9)), model))
    assert (out["temperature"], out["top_p"]) == (0.3, 0.9) and lost == []


@pytest.mark.parametrize("fields", [{"temperature": 0.3}, {"top_p": 0.9}])
def test_temperature_or_top_p_alone_is_kept_for_claude_4_5(lost: Lost,
                                                           fields: dict[str, Any]) -> None:
    out = json.loads(lost.render(anthropic_messages, openai_chat.parse_request(_chat(**fields)),
                                                       "claude-sonnet-4-5"))
    assert all(out[k] == v for k, v in fields.items()) and lost == []


def test_with_thinking_only_top_p_goes_to_claude_4_5(lost: Lost) -> None:
    req = openai_chat.parse_request(_chat(temperature=0.3, top_p=0.97, reasoning_effort="low"))
    out = json.loads(lost.render(anthropic_messages, req, "claude-sonnet-4-5"))
    assert out["thinking"]["type"] == "enabled" and "temperature" not in out and out["top_p"] == 0.97


# ---- Anthropic client -> OpenAI / Gemini: Messages API fields the IR does not carry -----------


def _messages(**fields: Any) -> bytes:
    return json.dumps({"model": "m", "max_tokens": 10, "messages": MESSAGES, **fields}).encode()


FUNCTION_TOOL = {"name": "f", "input_schema": {"type": "object"}}


@pytest.mark.parametrize("fields, param", [
    ({"tools": [FUNCTION_TOOL, {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]}, "tools"),
    ({"tools": [{"type": "web_fetch_20250910", "name": "web_fetch"}]}, "tools"),
    ({"tools": [{"type": "code_execution_20250825", "name": "code_execution"}], "container": "container_1"}, "tools"),
    ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, "tools"),
    ({"tools": [{"type": "mcp_toolset", "mcp_server_name": "docs"}],
      "mcp_servers": [{"type": "url", "url": "https://mcp.example/sse", "name": "docs"}]}, "tools"),
    ({"mcp_servers": [{"type": "url", "url": "https://mcp.example/sse", "name": "docs"}]}, "mcp_servers"),
    ({"compaction": {"type": "compaction"}}, "compaction"),
    ({"thread": {"type": "continue", "previous_message_id": "msg_1"}}, "thread"),
])
def test_anthropic_fields_the_client_depends_on_are_a_400(fields: dict[str, Any], param: str) -> None:
    err = _refused(anthropic_messages.parse_request, _messages(**fields), param)
    status, body = anthropic_messages.render_error(err)
    payload = json.loads(body)
    assert status == 400 and payload["error"]["type"] == "invalid_request_error"
    assert param.split("_")[0] in payload["error"]["message"] or "tool type" in payload["error"]["message"]


@pytest.mark.parametrize("field, value", [
    ("service_tier", "standard_only"), ("speed", "fast"), ("inference_geo", "us"), ("container", "container_1"),
    ("context_management", {"edits": [{"type": "clear_tool_uses_20250919"}]}), ("fallbacks", ["claude-sonnet-4-5"]),
    ("thread", {"type": "create"}),
])
@pytest.mark.parametrize("upstream", [openai_chat, gemini])
def test_anthropic_fields_the_client_can_live_without_are_dropped_with_a_warning(
        lost: Lost, field: str, value: Any, upstream: Any) -> None:
    out = lost.render(upstream, anthropic_messages.parse_request(_messages(**{field: value})), "up")
    assert field.encode() not in out
    assert any(field in r and "dropped" in r for r in lost)


def test_anthropic_account_and_cache_fields_and_defaults_are_quiet(lost: Lost) -> None:
    quiet = {"service_tier": "auto", "speed": "standard", "container": None, "cache_control": {"type": "ephemeral"},
             "diagnostics": {"previous_message_id": "msg_1"}, "fallback_credit_token": "tok",
             "billing_policy": {"type": "billing_policy", "bill_to": "self"}, "user_profile_id": "up_1",
             "workspace_id": "wrkspc_1", "metadata": {"user_id": "u1"}}
    req = anthropic_messages.parse_request(_messages(**quiet))
    assert json.loads(lost.render(openai_chat, req, "gpt-4o"))["user"] == "u1"
    lost.render(gemini, req, "gemini-2.5-flash")
    assert lost == []


def test_anthropic_count_tokens_drops_server_tools_instead_of_refusing(lost: Lost) -> None:
    body = json.dumps({"model": "m", "messages": MESSAGES, "mcp_servers": [{"type": "url", "url": "https://x"}],
                       "tools": [FUNCTION_TOOL, {"type": "web_search_20250305", "name": "web_search"}]}).encode()
    req = anthropic_messages.parse_count_tokens_request(body)
    assert [t.name for t in req.tools] == ["f"]
    assert [(loss.field, loss.what) for loss in req.losses] == [("server tool 'web_search_20250305'", "dropped")]


def test_anthropic_compaction_block_is_carried_as_text(lost: Lost) -> None:
    messages = [{"role": "assistant", "content": [
                    {"type": "compaction", "content": "Earlier: the user asked about Paris.", "signature": "s"}]},
                {"role": "assistant", "content": [{"type": "compaction", "content": None}]},
                {"role": "user", "content": "And its population?"}]
    req = anthropic_messages.parse_request(json.dumps({"model": "m", "max_tokens": 10, "messages": messages}).encode())
    out = json.loads(lost.render(openai_chat, req, "gpt-4o"))
    assert "Earlier: the user asked about Paris." in json.dumps(out["messages"]) and lost == []


# ---- OpenAI web_search_options / verbosity, Gemini audio output -------------------------------


def test_chat_web_search_options_is_the_providers_web_search() -> None:
    """Carried as web search (tests/e2e/test_web_search.py); a value that is not an object is a 400."""
    req = openai_chat.parse_request(_chat(web_search_options={"search_context_size": "low", "user_location": {
        "type": "approximate", "approximate": {"city": "Zürich"}}}))
    assert req.web_search == ir.WebSearch(user_location={"type": "approximate", "city": "Zürich"}, context_size="low")
    with pytest.raises(GatewayError) as info:
        openai_chat.parse_request(_chat(web_search_options="low"))
    assert (info.value.status, info.value.param) == (400, "web_search_options")


@pytest.mark.parametrize("upstream", [anthropic_messages, gemini])
def test_chat_verbosity_is_dropped_with_a_warning_and_the_default_is_quiet(
        lost: Lost, upstream: Any) -> None:
    out = lost.render(upstream, openai_chat.parse_request(_chat(verbosity="low")), "up")
    assert b"verbosity" not in out
    assert any("verbosity" in r and "dropped" in r for r in lost)
    lost.clear()
    assert openai_chat.parse_request(_chat(verbosity="medium")).losses == []


@pytest.mark.parametrize("config, param", [
    ({"speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}}},
     "generationConfig.speechConfig"),
    ({"speech_config": {"voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}}}},
     "generationConfig.speechConfig"),
    ({"responseModalities": ["AUDIO"]}, "generationConfig.responseModalities"),
    ({"responseModalities": ["AUDIO"], "speechConfig": {"languageCode": "en-US"}},
     "generationConfig.responseModalities"),
])
def test_gemini_audio_output_is_a_400_in_the_gemini_shape(config: dict[str, Any], param: str) -> None:
    status, body = gemini.render_error(_refused(gemini.parse_request, _gemini(generationConfig=config), param))
    assert status == 400 and json.loads(body)["error"]["status"] == "INVALID_ARGUMENT"
    # countTokens is not refused (a Gemini channel counts the client's own body)
    assert gemini.parse_count_tokens_request(_gemini(generationConfig=config)).messages


def test_gemini_image_output_is_still_dropped_with_a_warning(lost: Lost) -> None:
    req = gemini.parse_request(_gemini(generationConfig={"responseModalities": ["TEXT", "IMAGE"]}))
    assert any("responseModalities" in loss.field for loss in req.losses)
    lost.render(openai_chat, req, "gpt-4o")
    assert any("responseModalities" in r for r in lost)
