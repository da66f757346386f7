"""CPU of the per-request work legacy completions and embeddings add, in µs (best of 15 x N):
the peeks next to chat's, a Gemini embeddings conversion (request, answer, floats and base64), and
the tokenizer count an embedding without reported usage costs.

    PYTHONPATH=src python bench/text_extras_cpu.py

A diagnostic, not part of run.py; the machine's noise is a few tenths of a µs.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

import msgspec

from polyrelay import ir
from polyrelay.protocols import openai_chat, openai_completions, openai_embeddings
from polyrelay.protocols.openai_embeddings import gemini
from polyrelay.sim.openai_embeddings import vector
from polyrelay.tokens import estimate_text_tokens

CHAT = msgspec.json.encode({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say this is a test"}],
                            "max_tokens": 50, "stream": True})
COMPLETION = msgspec.json.encode({"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test",
                                  "max_tokens": 50, "stream": True})
EMBEDDING = msgspec.json.encode({"model": "text-embedding-3-small", "input": ["The food was delicious"] * 4})
TEXTS = ["The food was delicious and the waiter was friendly"] * 4
GEMINI_ANSWER = msgspec.json.encode({"embeddings": [{"values": vector(t, 768)} for t in TEXTS]})
OPENAI_ANSWER = msgspec.json.encode({"object": "list", "data": [
    {"object": "embedding", "index": i, "embedding": vector(t, 1536)} for i, t in enumerate(TEXTS)],
    "model": "text-embedding-3-small", "usage": {"prompt_tokens": 40, "total_tokens": 40}})
PUBLIC = msgspec.json.encode("public-name")


def best(fn: Callable[[], object], n: int) -> float:
    return min(timeit.repeat(fn, number=n, repeat=15)) / n * 1e6


def main() -> None:
    req = openai_embeddings.EmbeddingRequest(TEXTS, 768)
    vectors, _ = gemini.parse_response(GEMINI_ANSWER, 4)
    usage = ir.Usage(input_tokens=40)
    estimate_text_tokens("load the table first")
    cases: list[tuple[str, Callable[[], object], int]] = [
        ("chat peek (for comparison)", lambda: openai_chat.fastpath.peek_request(CHAT), 50_000),
        ("completions peek", lambda: openai_completions.peek_request(COMPLETION), 50_000),
        ("embeddings peek", lambda: openai_embeddings.peek_request(EMBEDDING), 50_000),
        ("pass-through answer, 4 x 1536, tail", lambda: (openai_embeddings.answer.usage_of(OPENAI_ANSWER),
                                                          openai_embeddings.answer.rename_model(OPENAI_ANSWER, PUBLIC)),
         2_000),
        ("  the same read whole (chat's reader)", lambda: (openai_chat.fastpath.usage_of(OPENAI_ANSWER, whole=True),
                                                          openai_chat.fastpath.rename_model(OPENAI_ANSWER, PUBLIC)),
         500),
        ("gemini embed request, 4 inputs", lambda: gemini.render_request(req, "gemini-embedding-001"), 20_000),
        ("gemini embed answer, 4 x 768", lambda: gemini.parse_response(GEMINI_ANSWER, 4), 2_000),
        ("openai answer, floats, 4 x 768",
         lambda: openai_embeddings.render_response(vectors, "m", "float", usage), 2_000),
        ("openai answer, base64, 4 x 768",
         lambda: openai_embeddings.render_response(vectors, "m", "base64", usage), 2_000),
        ("tokenizer count, 4 inputs", lambda: sum(estimate_text_tokens(t) for t in TEXTS), 20_000),
    ]
    for name, fn, n in cases:
        print(f"{name:<38} {best(fn, n):8.3f} µs")


if __name__ == "__main__":
    main()
