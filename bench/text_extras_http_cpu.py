"""Gateway CPU per request (utime + stime of the gateway process over N sequential requests) for chat,
legacy completions and embeddings, passed through and converted, against the simulator, using the
test suite's gateway config of tests/e2e/test_text_extras.py.

    PYTHONPATH=src python bench/text_extras_http_cpu.py [N]

The clock ticks every 10 ms, so with N = 300 a figure is good to about 35 µs; run it twice. A
diagnostic, not part of run.py.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]

from test_text_extras import _config  # noqa: E402

from servers import start_gateway, start_simulator  # noqa: E402

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "chat, pass-through": ("/v1/chat/completions", {"model": "gpt-4o-mini", "max_tokens": 20,
                                                    "messages": [{"role": "user", "content": "hi"}]}),
    "completions, pass-through": ("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "hi",
                                                      "max_tokens": 20}),
    "completions, converted to chat": ("/v1/completions", {"model": "gpt-4o-mini", "prompt": "hi", "max_tokens": 20}),
    "embeddings, pass-through, 4 x 1536 base64": ("/v1/embeddings", {"model": "text-embedding-3-small",
                                                                      "input": ["a", "b", "c", "d"],
                                                                      "encoding_format": "base64"}),
    "embeddings, pass-through, 4 x 1536 float": ("/v1/embeddings", {"model": "text-embedding-3-small",
                                                                     "input": ["a", "b", "c", "d"],
                                                                     "encoding_format": "float"}),
    "embeddings, Gemini, 4 x 3072 float": ("/v1/embeddings", {"model": "gemini-embedding-001",
                                                               "input": ["a", "b", "c", "d"],
                                                               "encoding_format": "float"}),
    "embeddings, Gemini, 4 x 3072 base64": ("/v1/embeddings", {"model": "gemini-embedding-001",
                                                                "input": ["a", "b", "c", "d"],
                                                                "encoding_format": "base64"}),
}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(n: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="text-extras-bench-"))
    sim = start_simulator(work)
    gateway = start_gateway(_config(sim.url), work)
    try:
        assert gateway.proc is not None
        pid = gateway.proc.pid
        http = httpx.Client(base_url=gateway.url, headers={"Authorization": "Bearer sk-text-alice-0001"})
        for name, (path, body) in CASES.items():
            for _ in range(30):   # warm: connections, caches, the tokenizer table
                http.post(path, json=body)
            before = cpu_seconds(pid)
            for _ in range(n):
                assert http.post(path, json=body).status_code == 200
            print(f"{name:<44} {(cpu_seconds(pid) - before) / n * 1e6:7.0f} µs CPU per request")
    finally:
        gateway.stop()
        sim.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
