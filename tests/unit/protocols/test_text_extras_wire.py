"""The wire of legacy completions and embeddings (protocols/openai_completions, openai_embeddings):
the peek the reservation reads, the conversion's 400s, the pass-through body, the stream tap and
encoder, base64 float32 packing and the Gemini embed shapes."""

from __future__ import annotations

import base64
import struct

import msgspec
import pytest

from polyrelay import ir
from polyrelay.errors import GatewayError
from polyrelay.protocols import openai_completions, openai_embeddings
from polyrelay.protocols.openai_embeddings import gemini


def _body(**fields: object) -> bytes:
    return msgspec.json.encode({"model": "gpt-3.5-turbo-instruct", "prompt": "hi", **fields})


def test_the_peek_reserves_the_endpoints_default_of_16_and_every_best_of_answer() -> None:
    peek = openai_completions.peek_request(_body())
    assert peek.max_output == 16 and peek.n == 1 and not peek.stream
    peek = openai_completions.peek_request(_body(max_tokens=300, n=2, best_of=5, stream=True,
                                                 stream_options={"include_usage": True}))
    assert peek.max_output == 300 and peek.n == 5 and peek.stream and peek.include_usage
    assert openai_completions.peek_request(_body(max_tokens=0)).max_output == 0   # echo scoring, passed through


@pytest.mark.parametrize(("fields", "param"), [({"n": 3, "best_of": 2}, "best_of"), ({"max_tokens": -1}, "max_tokens"),
                                               ({"best_of": 21}, "best_of"), ({"prompt": None}, "prompt"),
                                               ({"model": ""}, "model")])
def test_the_peek_refuses_what_no_upstream_takes(fields: dict[str, object], param: str) -> None:
    body = _body(**fields)
    if fields.get("prompt", "") is None:
        body = msgspec.json.encode({"model": "m"})
    with pytest.raises(GatewayError) as caught:
        openai_completions.peek_request(body)
    assert caught.value.status == 400 and caught.value.param == param


def test_a_prompt_becomes_one_user_message_with_the_default_limit() -> None:
    req = openai_completions.parse_request(_body(prompt=["once"], stop="\n", temperature=0, user="u", seed=3))
    assert req.messages == [ir.Message("user", [ir.TextPart("once")])] and req.system == []
    assert req.max_tokens == 16 and req.stop == ["\n"] and req.temperature == 0 and req.user == "u" and req.seed == 3
    assert openai_completions.parse_request(_body(max_tokens=99, best_of=2, n=2)).max_tokens == 99


@pytest.mark.parametrize(("fields", "param"), [
    ({"echo": True}, "echo"), ({"suffix": "x"}, "suffix"), ({"logprobs": 0}, "logprobs"),
    ({"logit_bias": {"1": 2}}, "logit_bias"), ({"best_of": 2}, "best_of"), ({"prompt": [[1, 2]]}, "prompt"),
    ({"prompt": [1, 2]}, "prompt"), ({"prompt": ["a", "b"]}, "prompt"), ({"prompt": ""}, "prompt"),
    ({"max_tokens": 0}, "max_tokens"), ({"stop": [1]}, "stop")])
def test_a_conversion_refuses_what_a_chat_model_cannot_honour(fields: dict[str, object], param: str) -> None:
    with pytest.raises(GatewayError) as caught:
        openai_completions.parse_request(_body(**fields))
    assert caught.value.status == 400 and caught.value.param == param
    # harmless defaults are no reason to refuse
    assert openai_completions.parse_request(_body(echo=False, suffix="", logprobs=None, logit_bias={}, best_of=1))


def test_the_pass_through_body_says_max_tokens_and_asks_for_usage() -> None:
    peek = openai_completions.peek_request(_body(stream=True, echo=True))
    peek.upstream_max_output = 16
    sent = msgspec.json.decode(openai_completions.upstream_body(peek, "up-model", True))
    assert sent == {"model": "up-model", "prompt": "hi", "stream": True, "echo": True, "max_tokens": 16,
                    "stream_options": {"include_usage": True}}


def _event(payload: dict[str, object]) -> bytes:
    return b"data: " + msgspec.json.encode(payload) + b"\n\n"


def test_the_stream_tap_renames_counts_text_and_drops_the_usage_chunk_not_asked_for() -> None:
    tap = openai_completions.CompletionStreamTap("public", drop_usage_chunk=True)
    base = {"id": "cmpl-1", "object": "text_completion", "model": "up"}
    out = tap.feed(_event({**base, "choices": [{"text": "hello ", "index": 0, "finish_reason": None}]})
                   + _event({**base, "choices": [{"text": "world", "index": 0, "finish_reason": None}]}))
    assert out.count(b'"model":"public"') == 2 and tap.text_bytes == len("hello world")
    out = tap.feed(_event({**base, "choices": [{"text": "", "index": 0, "finish_reason": "length"}]})
                   + _event({**base, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
                   + b"data: [DONE]\n\n")
    assert tap.finished and tap.done and tap.usage == ir.Usage(input_tokens=3, output_tokens=2)
    assert b'"usage"' not in out and out.endswith(b"data: [DONE]\n\n")


def test_the_stream_encoder_writes_completion_chunks_then_usage_then_done() -> None:
    req = ir.Request(model="m", include_usage=True)
    enc = openai_completions.StreamEncoder("public", req, "sse")
    out = b"".join(enc.encode(e) for e in (ir.StreamStart("x", "up"), ir.ThinkingDelta("hmm"), ir.TextDelta("Hi"),
                                           ir.Finish("tool_calls"), ir.UsageEvent(ir.Usage(5, 1))))
    out += enc.close()
    events = [msgspec.json.decode(e[6:]) for e in out.split(b"\n\n") if e.startswith(b"data: {")]
    assert [e["choices"] for e in events] == [
        [{"text": "Hi", "index": 0, "logprobs": None, "finish_reason": None}],
        [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}], []]
    assert all(e["object"] == "text_completion" and e["model"] == "public" for e in events)
    assert events[-1]["usage"]["prompt_tokens"] == 5 and out.endswith(b"data: [DONE]\n\n")


def test_embedding_inputs_and_their_400s() -> None:
    assert openai_embeddings.input_texts("a") == ["a"] and openai_embeddings.input_texts([1, 2]) == [[1, 2]]
    assert openai_embeddings.input_texts([[1], [2, 3]]) == [[1], [2, 3]]
    for bad in ([], [""], ["a", 1], [True], {"a": 1}, None, ["x"] * 2049):
        with pytest.raises(GatewayError):
            openai_embeddings.input_texts(bad)
    req = openai_embeddings.parse_request(b'{"model":"m","input":["a","b"],"dimensions":8,"encoding_format":"base64"}')
    assert req == openai_embeddings.EmbeddingRequest(["a", "b"], 8, "base64")


def test_base64_embeddings_are_little_endian_float32_in_the_standard_alphabet() -> None:
    # float32 bytes fb ef be 3f | ff ff ff 3e: base64 "++++P////z...", then a value float32 rounds
    values = [1.4916986227035522, 0.4999999701976776, 0.1]
    packed = openai_embeddings.pack_base64(values)
    assert packed.startswith("++++P////z")
    assert list(struct.unpack("<3f", base64.b64decode(packed, validate=True))) == \
        [*values[:2], struct.unpack("<f", struct.pack("<f", 0.1))[0]]
    raw = msgspec.Raw(msgspec.json.encode(values))
    body = msgspec.json.decode(openai_embeddings.render_response([raw, raw], "m\"", "base64", ir.Usage(7)))
    assert body["data"] == [{"object": "embedding", "index": i, "embedding": packed} for i in (0, 1)]
    assert body == {"object": "list", "data": body["data"], "model": "m\"",
                    "usage": {"prompt_tokens": 7, "total_tokens": 7}}
    # floats go as the upstream wrote them
    floats = msgspec.json.decode(openai_embeddings.render_response([msgspec.Raw(b"[0.1,-2e-05]")], "m", "float",
                                                                   ir.Usage(1)))
    assert floats["data"][0]["embedding"] == [0.1, -2e-05]
    with pytest.raises(GatewayError) as caught:   # base64 needs numbers
        openai_embeddings.render_response([msgspec.Raw(b'["x"]')], "m", "base64", ir.Usage(1))
    assert caught.value.status == 502


def test_gemini_embed_requests_and_answers() -> None:
    sent = msgspec.json.decode(gemini.render_request(openai_embeddings.EmbeddingRequest(["a", "b"], 16), "emb"))
    assert sent == {"requests": [{"model": "models/emb", "content": {"parts": [{"text": t}]},
                                  "outputDimensionality": 16} for t in ("a", "b")]}
    vectors, usage = gemini.parse_response(b'{"embeddings":[{"values":[0.5,1]},{"values":[2]}]}', 2)
    assert [bytes(v) for v in vectors] == [b"[0.5,1]", b"[2]"] and usage is None
    _, usage = gemini.parse_response(b'{"embeddings":[{"values":[1]}],"usageMetadata":{"promptTokenCount":4}}', 1)
    assert usage == ir.Usage(input_tokens=4)
    for wrong in (b'{"embeddings":[]}', b"<html>", b'{"embeddings":[{"values":"x"}]}', b'{"embeddings":[{}]}'):
        with pytest.raises(GatewayError) as caught:
            gemini.parse_response(wrong, 1)
        assert caught.value.status == 502 and caught.value.retryable
    with pytest.raises(GatewayError) as caught:
        gemini.render_request(openai_embeddings.EmbeddingRequest(["x"] * 101), "emb")
    assert caught.value.status == 400 and caught.value.param == "input"


def test_a_passed_through_embeddings_answer_is_read_from_its_tail() -> None:
    from polyrelay.protocols import Unreadable
    from polyrelay.protocols.openai_embeddings import answer

    body = msgspec.json.encode({"object": "list", "data": [{"object": "embedding", "index": 0,
                                                            "embedding": [0.5] * 8}],
                                "model": "up-model", "usage": {"prompt_tokens": 9, "total_tokens": 9}})
    assert answer.usage_of(body) == ir.Usage(input_tokens=9)
    renamed = msgspec.json.decode(answer.rename_model(body, b'"public"'))
    assert renamed["model"] == "public" and renamed["data"][0]["embedding"] == [0.5] * 8
    # another order, no usage, a usage of null, a body that is not JSON
    assert answer.usage_of(b'{"usage":{"prompt_tokens":3},"model":"m","data":[]}') == ir.Usage(input_tokens=3)
    assert answer.usage_of(b'{"data":[],"model":"m"}') is None
    assert answer.usage_of(b'{"data":[],"usage":null}') is None
    assert answer.rename_model(b'{"data":[]}', b'"x"') == b'{"data":[]}'
    with pytest.raises(Unreadable):
        answer.usage_of(b"<html>usage</html>")
