"""Golden conversion tests: tests/golden/<client>__<upstream>/<case>/ holds the client's request, the
upstream request it must become, the upstream's answer (whole and streamed) and the answer the
client must get back. Regenerate with `python tests/golden_cases.py` and review the diff."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from golden_cases import SKIP_PAIRS
from polyrelay import ids
from polyrelay.protocols.registry import PROTOCOLS
from polyrelay.sim import anthropic_messages as sim_anthropic
from polyrelay.sim import gemini as sim_gemini
from polyrelay.sim import openai_chat as sim_openai
from polyrelay.sim import openai_responses as sim_responses
from polyrelay.sim.replies import SimReply, SimStream
from polyrelay.sim.script import Script, read_script

GOLDEN = Path(__file__).parents[1] / "golden"
CASES = sorted(p for p in GOLDEN.glob("*__*/*") if p.is_dir())
UPSTREAM_MODEL = "upstream-model"


def module(name: str) -> Any:
    return PROTOCOLS[name]


def parse_client(client: str, body: bytes, stream: bool) -> Any:
    req = module(client).parse_request(body)
    if module(client).MODEL_IN_URL:   # the route would have named it
        req.model = "m"
    req.stream = stream or req.stream
    return req


def _pretty(data: bytes) -> bytes:
    return json.dumps(json.loads(data), indent=1, ensure_ascii=False).encode() + b"\n"


Simulate = Callable[[bytes, bool, Script], "SimReply | SimStream"]
# the simulator's answer to an upstream request (body, stream), by the upstream's protocol name
SIMULATORS: dict[str, Simulate] = {
    "openai_chat": lambda body, stream, script: sim_openai.handle(body, script),
    "openai_responses": lambda body, stream, script: sim_responses.handle(body, script),
    "anthropic_messages": lambda body, stream, script: sim_anthropic.handle(
        body, {"anthropic-version": "2023-06-01"}, script),
    "gemini": lambda body, stream, script: sim_gemini.handle(
        body, UPSTREAM_MODEL, "streamGenerateContent" if stream else "generateContent", True, "k", script),
}


def _simulate(upstream: str, body: bytes, stream: bool) -> bytes:
    if upstream not in SIMULATORS:
        raise LookupError(f"no simulator for the {upstream!r} protocol: add it to SIMULATORS in {__file__}")
    reply = SIMULATORS[upstream](body, stream, read_script(body, "k"))
    assert not isinstance(reply, SimReply) or reply.status == 200, reply
    return reply.body if isinstance(reply, SimReply) else b"".join(reply.pieces)


def convert_stream(client: str, upstream: str, request: Any, pieces: list[bytes]) -> bytes:
    ids.use_deterministic_ids(1000)
    decoder = module(upstream).StreamDecoder()
    encoder = module(client).StreamEncoder("m", request)
    out = [encoder.encode(e) for piece in pieces for e in decoder.feed(piece)]
    out += [encoder.encode(e) for e in decoder.close()]
    return b"".join(out) + encoder.close()


def expected_outputs(client: str, upstream: str, request: dict[str, Any]) -> dict[str, bytes]:
    """What the converters (and the simulator, for upstream answers) make of `request` today."""
    body = json.dumps(request).encode()
    ids.use_deterministic_ids()
    up_request = module(upstream).render_request(parse_client(client, body, False), UPSTREAM_MODEL)[0]
    up_stream_request = module(upstream).render_request(parse_client(client, body, True), UPSTREAM_MODEL)[0]
    up_response = _simulate(upstream, up_request, False)
    up_sse = _simulate(upstream, up_stream_request, True)
    ids.use_deterministic_ids(500)
    client_response = module(client).render_response(module(upstream).parse_response(up_response), "m")
    client_sse = convert_stream(client, upstream, parse_client(client, body, True), [up_sse])
    ids.use_random_ids()
    return {"upstream_request.json": _pretty(up_request), "upstream_response.json": _pretty(up_response),
            "client_response.json": _pretty(client_response), "upstream_response.sse": up_sse,
            "client_response.sse": client_sse}


def _normal(value: Any) -> Any:
    """JSON with timestamps zeroed (encoders stamp `created` with the clock)."""
    if isinstance(value, dict):
        return {k: 0 if k in ("created", "created_at") else _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def sse_events(body: bytes) -> list[Any]:
    events = []
    for raw in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        for line in raw.split(b"\n"):
            if line.startswith(b"event:"):
                events.append(("event", line[6:].strip().decode()))
            elif line.startswith(b"data:"):
                data = line[5:].strip()
                try:
                    events.append(("data", _normal(json.loads(data))))
                except json.JSONDecodeError:
                    events.append(("data", data.decode()))
    return events


def _split(case: Path) -> tuple[str, str]:
    client, upstream = case.parent.name.split("__")
    return client, upstream


def test_every_protocol_has_a_simulator() -> None:
    assert set(SIMULATORS) == set(PROTOCOLS)
    with pytest.raises(LookupError, match="no simulator for the 'carrier_pigeon' protocol"):
        _simulate("carrier_pigeon", b"{}", False)


def test_there_are_golden_cases_for_every_pair() -> None:
    pairs = {p.parent.name for p in CASES}
    # 11 cases (json_object and image_url not for every pair) over every pair but Responses -> Responses
    # (the fast path: tests/e2e/test_responses_api.py)
    assert pairs == {f"{client}__{upstream}" for client in PROTOCOLS for upstream in PROTOCOLS} - {
        f"{client}__{upstream}" for client, upstream in SKIP_PAIRS}
    assert len(CASES) >= 155


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_request_converts_to_the_expected_upstream_request(case: Path) -> None:
    client, upstream = _split(case)
    ids.use_deterministic_ids()
    req = parse_client(client, (case / "client_request.json").read_bytes(), False)
    got = json.loads(module(upstream).render_request(req, UPSTREAM_MODEL)[0])
    assert got == json.loads((case / "upstream_request.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_response_converts_to_the_expected_client_response(case: Path) -> None:
    client, upstream = _split(case)
    parse_client(client, (case / "client_request.json").read_bytes(), False)   # as the relay does, first
    ids.use_deterministic_ids(500)
    answer = module(upstream).parse_response((case / "upstream_response.json").read_bytes())
    got = _normal(json.loads(module(client).render_response(answer, "m")))
    assert got == _normal(json.loads((case / "client_response.json").read_text()))


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_stream_converts_to_the_expected_client_stream(case: Path) -> None:
    client, upstream = _split(case)
    request = parse_client(client, (case / "client_request.json").read_bytes(), True)
    got = convert_stream(client, upstream, request, [(case / "upstream_response.sse").read_bytes()])
    assert sse_events(got) == sse_events((case / "client_response.sse").read_bytes())


STREAM_CASES = [c for c in CASES if c.name in ("tools", "parallel_tools", "thinking", "text", "web_search")]


@pytest.mark.parametrize("case", STREAM_CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_stream_conversion_does_not_depend_on_where_the_bytes_are_split(case: Path, data: st.DataObject) -> None:
    client, upstream = _split(case)
    body = (case / "upstream_response.sse").read_bytes()
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(body)), max_size=20))))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    request_body = (case / "client_request.json").read_bytes()
    whole = convert_stream(client, upstream, parse_client(client, request_body, True), [body])
    split = convert_stream(client, upstream, parse_client(client, request_body, True), pieces)
    assert sse_events(split) == sse_events(whole)


def test_golden_files_are_what_the_generator_makes_today() -> None:
    """The stored upstream answers came from the simulator; re-running it must still agree on shape."""
    case = GOLDEN / "openai_chat__anthropic_messages" / "tools"
    request = json.loads((case / "client_request.json").read_text())
    fresh = expected_outputs("openai_chat", "anthropic_messages", request)
    assert json.loads(fresh["upstream_request.json"]) == json.loads((case / "upstream_request.json").read_text())
    assert msgspec.json.decode(fresh["client_response.json"])["choices"][0]["finish_reason"] == "tool_calls"
