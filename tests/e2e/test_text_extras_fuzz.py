"""Bad input to /v1/completions and /v1/embeddings gets a clear error in OpenAI's shape, never a 500
and never a traceback in the gateway's log: valid requests of both with one to three values swapped
for anything (wrong types, huge integers, deep nesting, odd unicode), or bytes that are not JSON, to
every channel kind that serves them (pass-through and converted). The strategies are
test_malformed_fuzz's. Bounded: POLYRELAY_FUZZ_EXAMPLES examples per route (default 300)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_malformed_fuzz import FUZZ, NUMBER, RAW_BODIES, VALUE, Log, _paths, _replace, _set, check, to_json
from test_text_extras import _config

from servers import Server, start_gateway

pytestmark = pytest.mark.fuzz

COMPLETION_MODELS = ["gpt-3.5-turbo-instruct", "gpt-4o-mini", "claude-sim-sonnet", "gemini-2.5-flash"]
EMBEDDING_MODELS = ["text-embedding-3-small", "embed-mapped", "gemini-embedding-001", "claude-sim-sonnet"]
COMPLETIONS = [{"prompt": "Say hi [[sim:words=3]]", "max_tokens": 20},
               {"prompt": ["one"], "stream": True, "stream_options": {"include_usage": True}, "n": 1},
               {"prompt": "x", "temperature": 0.2, "stop": ["\n"], "best_of": 1, "echo": False, "seed": 1}]
EMBEDDINGS = [{"input": "hello"}, {"input": ["a", "b"], "encoding_format": "base64"},
              {"input": [[1, 2], [3]], "dimensions": 8, "encoding_format": "float"}]
NUMERIC = {"completions": [("max_tokens",), ("n",), ("best_of",), ("logprobs",), ("seed",), ("temperature",)],
           "embeddings": [("dimensions",), ("input",), ("input", 0)]}
KEYS = ["sk-text-alice-0001", "sk-text-finite-0001", "sk-text-broke-0001"]


def _bodies(bases: list[dict[str, Any]], models: list[str], numeric: list[tuple[Any, ...]]) -> st.SearchStrategy[bytes]:
    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        body: Any = {"model": draw(st.sampled_from(models)), **draw(st.sampled_from(bases))}
        for _ in range(draw(st.integers(1, 3))):
            if draw(st.booleans()):
                body = _set(body, draw(st.sampled_from(numeric)), draw(NUMBER))
            else:
                body = _replace(body, draw(st.sampled_from(_paths(body)[1:])), draw(VALUE))
            if not isinstance(body, dict):
                break
        return to_json(body).encode("utf-8", "surrogatepass")

    return st.one_of(mutated(), mutated(), mutated(), RAW_BODIES)


@pytest.fixture(scope="module")
def text_fuzz(sim: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_gateway(_config(sim.url), tmp_path_factory.mktemp("textfuzz"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(text_fuzz: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=text_fuzz.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def log(text_fuzz: Server) -> Log:
    return Log(text_fuzz.log)


@FUZZ
@given(body=_bodies(COMPLETIONS, COMPLETION_MODELS, NUMERIC["completions"]), key=st.sampled_from(KEYS))
def test_completions(http: httpx.Client, log: Log, body: bytes, key: str) -> None:
    r = http.post("/v1/completions", content=body, headers={"Authorization": f"Bearer {key}"})
    check(r, log, "openai", body[:2000])


@FUZZ
@given(body=_bodies(EMBEDDINGS, EMBEDDING_MODELS, NUMERIC["embeddings"]), key=st.sampled_from(KEYS))
def test_embeddings(http: httpx.Client, log: Log, body: bytes, key: str) -> None:
    r = http.post("/v1/embeddings", content=body, headers={"Authorization": f"Bearer {key}"})
    check(r, log, "openai", body[:2000])
