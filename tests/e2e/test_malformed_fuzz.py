"""Bad input gets a clear error in the caller's own shape, never a 500 and never a traceback in the
gateway's log: every route (the four surfaces' generation and token counts, model lists, billing,
admin with and without its token, unknown paths), bodies that mix valid shapes (the golden cases) with
wrong types, deep nesting (a 2 KB body can nest 1,000 levels), integers past 2^63, odd unicode (lone
surrogates, NUL, bidi controls) and bytes that are not JSON at all.

One gateway of its own (its log is read after every request), the shared simulator behind it. Bounded:
POLYRELAY_FUZZ_EXAMPLES examples per route (default 300; 8 routes groups, about 20 s on a quiet machine)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import golden_cases
from conftest import main_config
from sdk_clients import PROTOCOL_ROWS
from servers import ADMIN_TOKEN, Admin, Server, start_gateway

pytestmark = pytest.mark.fuzz

KEY = "sk-alice-0001"
MODELS = [row.model for row in PROTOCOL_ROWS.values()]   # one served over a channel of each protocol
SURFACES = {row.surface: row for row in PROTOCOL_ROWS.values()}
EXAMPLES = int(os.environ.get("POLYRELAY_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


class Deep:
    """A value nested `depth` levels, written out as raw JSON text (json.dumps would recurse)."""

    def __init__(self, depth: int, kind: int) -> None:
        self.depth, self.kind = depth, kind

    def text(self) -> str:
        d = self.depth
        return ("[" * d + "]" * d, '{"a":' * d + "1" + "}" * d, '[{"x":' * d + "0" + "}]" * d,
                "[" * d)[self.kind]  # the last is not even closed

    def __repr__(self) -> str:
        return f"Deep({self.depth}, {self.kind})"


def to_json(value: Any) -> str:
    if isinstance(value, Deep):
        return value.text()
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value)


HUGE_INTS = st.sampled_from([2**63 - 1, 2**63, 2**64, -2**63 - 1, 10**30, -10**30, 2**1000, -1, 0])
ODD_TEXT = st.one_of(
    st.text(st.characters(codec=None, categories=None), max_size=12),   # lone surrogates included
    st.sampled_from(["\x00", "\u202e\u2066evil", "\ufeff", "\U0001F600" * 40, "\ud800", "\udfff\ud800", "\uffff",
                     "a" * 5000, "[[sim:words=2]]", "data:image/png;base64,-_-_", "-_-_-", "models/", "../x"]))
SMALL_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8), lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                        max_size=3), max_leaves=6)
DEEP = st.builds(Deep, st.sampled_from([64, 500, 990, 1500, 5000]), st.integers(0, 3))
VALUE = st.one_of(SMALL_JSON, HUGE_INTS, ODD_TEXT, DEEP, st.sampled_from([1e308, -1e308, 0.5, -0.0, 1e-320]))


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _replace(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


RAW_BODIES = st.one_of(st.binary(max_size=40), st.sampled_from([
    b"", b"null", b"[]", b"{", b'{"model":', b"\xff\xfe{}", b'{"a":"\xc3\x28"}', b'"\\ud800"', b"1e999999",
    b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\\ud800\\udc00\\ud800"}]}',
    b"[" * 100_000, b'{"a":' * 3000 + b"1" + b"}" * 3000, b'{"model":"gpt-4o-mini","model":1}']))


NUMBER = st.one_of(HUGE_INTS, HUGE_INTS, st.integers(-10, 10), st.sampled_from([1e308, -1e308, 0.5, -0.0, "7", True]))
# fields that reach arithmetic (reservations, budgets) or the database, per surface
NUMERIC = {
    "openai": [("max_tokens",), ("max_completion_tokens",), ("n",), ("seed",), ("top_logprobs",), ("temperature",),
               ("stream_options",)],
    "anthropic": [("max_tokens",), ("thinking", "budget_tokens"), ("top_k",), ("temperature",)],
    "gemini": [("generationConfig", "maxOutputTokens"), ("generationConfig", "max_output_tokens"),
               ("generationConfig", "candidateCount"), ("generationConfig", "thinkingConfig", "thinkingBudget"),
               ("generationConfig", "topK"), ("generationConfig", "seed"), ("generation_config", "candidate_count")],
    "responses": [("max_output_tokens",), ("max_tool_calls",), ("top_logprobs",), ("temperature",), ("top_p",),
                  ("reasoning", "effort"), ("text", "format", "schema", "maxLength"), ("stream_options",)],
}


def _set(value: Any, path: tuple, new: Any) -> Any:
    """`value` with `path` set to `new`, making objects on the way (or replacing what is not one)."""
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else {}
    copy[path[0]] = _set(copy.get(path[0]), path[1:], new)
    return copy


def body_strategy(cases: dict[str, Any], surface: str) -> st.SearchStrategy[bytes]:
    """A golden case with one to three values swapped (any value, or a number where numbers matter),
    or bytes that are not a request at all."""
    usable = {name: case for name, case in sorted(cases.items()) if name != "image_url"}  # no fetches here

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        base = dict(draw(st.sampled_from(sorted(usable.items())))[1])
        if surface != "gemini":
            base["model"] = draw(st.sampled_from(MODELS))
            if draw(st.booleans()):
                base["stream"] = True
        for _ in range(draw(st.integers(1, 3))):
            if draw(st.booleans()):
                base = _set(base, draw(st.sampled_from(NUMERIC[surface])), draw(NUMBER))
            else:
                base = _replace(base, draw(st.sampled_from(_paths(base)[1:])), draw(VALUE))
            if not isinstance(base, dict):
                break
        return to_json(base).encode("utf-8", "surrogatepass")

    return st.one_of(mutated(), mutated(), mutated(), RAW_BODIES)


# ---- the gateway under test ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_gateway(sim: Server, workdir: Path) -> Iterator[Server]:
    server = start_gateway(main_config(sim.url), workdir, db_name="fuzz.db")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def quota_key(fuzz_gateway: Server) -> str:
    """A key with a finite balance: its requests reserve and settle in the ledger."""
    return Admin(fuzz_gateway.url).create_key("fuzz-quota", 5.0)


@pytest.fixture(scope="module")
def http(fuzz_gateway: Server, quota_key: str) -> Iterator[httpx.Client]:
    KEYS["quota"] = quota_key
    with httpx.Client(base_url=fuzz_gateway.url, timeout=30) as client:
        yield client


class Log:
    """The part of the gateway's log written since the last look."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size

    def new(self) -> str:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        return data.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def log(fuzz_gateway: Server) -> Log:
    return Log(fuzz_gateway.log)


def check(r: httpx.Response, log: Log, shape: str, what: Any) -> None:
    written = log.new()
    assert r.status_code < 500, (what, r.status_code, r.text[:500])
    assert "Traceback" not in written and "unhandled error" not in written, (what, written[-3000:])
    if r.status_code >= 400:
        payload = r.json()
        if shape == "anthropic":
            assert payload["type"] == "error" and payload["error"]["message"], r.text
        elif shape == "gemini":
            assert payload["error"]["message"] and payload["error"]["status"], r.text
        else:
            assert payload["error"]["message"], r.text


AUTH = st.sampled_from(["good", "quota", "quota", "none", "wrong", "odd"])
KEYS: dict[str, str | None] = {"good": KEY, "none": None, "wrong": "sk-nobody-0000",
                               "odd": "sk-\u00e9\u00ff\u202e" + "x" * 300}


def key_headers(surface: str, auth: str) -> dict[str, bytes]:
    value = KEYS[auth]
    if value is None:
        return {}
    name, _, template = SURFACES[surface].key_header.partition(": ")
    return {name: template.format(key=value).encode()}


# ---- generation and count_tokens on each surface -----------------------------------------------------


@FUZZ
@given(body=body_strategy(golden_cases.OPENAI, "openai"), auth=AUTH)
def test_chat_completions(http: httpx.Client, log: Log, body: bytes, auth: str) -> None:
    r = http.post("/v1/chat/completions", content=body, headers=key_headers("openai", auth))
    check(r, log, "openai", body[:2000])


@FUZZ
@given(body=body_strategy(golden_cases.ANTHROPIC, "anthropic"), count=st.booleans(), auth=AUTH)
def test_messages_and_count_tokens(http: httpx.Client, log: Log, body: bytes, count: bool, auth: str) -> None:
    path = "/v1/messages/count_tokens" if count else "/v1/messages"
    r = http.post(path, content=body, headers={**key_headers("anthropic", auth), "anthropic-version": b"2023-06-01"})
    check(r, log, "anthropic", (path, body[:2000]))


@FUZZ
@given(body=body_strategy(golden_cases.GEMINI, "gemini"), model=st.sampled_from([*MODELS, "no-such-model"]),
       method=st.sampled_from(["generateContent", "streamGenerateContent?alt=sse", "streamGenerateContent",
                               "countTokens", "countTokens", "embedContent", ""]),
       version=st.sampled_from(["v1beta", "v1"]), wrap=st.booleans(), auth=AUTH)
def test_gemini_methods(http: httpx.Client, log: Log, body: bytes, model: str, method: str, version: str,
                        wrap: bool, auth: str) -> None:
    if method == "countTokens" and wrap and body.startswith(b"{"):  # countTokens also takes a wrapped request
        body = b'{"generateContentRequest":' + body + b"}"
    path = f"/{version}/models/{model}:{method}" if method else f"/{version}/models/{model}"
    r = http.post(path, content=body, headers=key_headers("gemini", auth))
    check(r, log, "gemini", (path, body[:2000]))


@FUZZ
@given(body=body_strategy(golden_cases.RESPONSES, "responses"), count=st.booleans(), auth=AUTH)
def test_responses_and_input_tokens(http: httpx.Client, log: Log, body: bytes, count: bool, auth: str) -> None:
    path = "/v1/responses/input_tokens" if count else "/v1/responses"
    r = http.post(path, content=body, headers=key_headers("responses", auth))
    check(r, log, "responses", (path, body[:2000]))


# ---- model lists, billing, admin, unknown routes --------------------------------------------------------

SEGMENT = st.one_of(st.sampled_from([*MODELS, "models/gpt-4o-mini", ""]), ODD_TEXT)


@FUZZ
@given(surface=st.sampled_from(list(SURFACES)), auth=AUTH, segment=SEGMENT,
       prefix=st.sampled_from(["/v1/models", "/v1beta/models"]), one=st.booleans(), query=ODD_TEXT)
def test_model_lists(http: httpx.Client, log: Log, surface: str, auth: str, segment: str, prefix: str, one: bool,
                     query: str) -> None:
    headers = key_headers(surface, auth)
    if surface == "anthropic":
        headers["anthropic-version"] = b"2023-06-01"
    path = prefix + ("/" + quote(segment.encode("utf-8", "surrogatepass"), safe="") if one else "")
    r = http.get(path, headers=headers, params={"key" if surface == "gemini" else "q": query.encode(
        "utf-8", "surrogatepass")} if query else None)
    check(r, log, "any" if prefix == "/v1/models" else "gemini", (path, headers, query))


DATES = st.one_of(st.sampled_from(["2026-01-31", "2026-02-30", "0001-01-01", "9999-12-31", "-1", "2026-1-1",
                                   "99999999999999999999"]), ODD_TEXT)


@FUZZ
@given(auth=AUTH, start=DATES, end=DATES, usage=st.booleans(), v1=st.booleans())
def test_billing(http: httpx.Client, log: Log, auth: str, start: str, end: str, usage: bool, v1: bool) -> None:
    path = ("/v1" if v1 else "") + ("/dashboard/billing/usage" if usage else "/dashboard/billing/subscription")
    params = {"start_date": start.encode("utf-8", "surrogatepass"), "end_date": end.encode("utf-8", "surrogatepass")}
    r = http.get(path, headers=key_headers("openai", auth), params=params)
    check(r, log, "openai", (path, params))


ADMIN_BODIES = st.one_of(
    st.builds(lambda name, quota, models: to_json({"name": name, "quota": quota, "models": models}).encode(
        "utf-8", "surrogatepass"), st.one_of(ODD_TEXT, SMALL_JSON, DEEP), st.one_of(HUGE_INTS, VALUE),
        st.one_of(st.lists(ODD_TEXT, max_size=3), VALUE)),
    RAW_BODIES)


@FUZZ
@given(token=st.sampled_from([ADMIN_TOKEN, ADMIN_TOKEN, None, "wrong", "\u00e9" * 70]), action=st.integers(0, 3),
       body=ADMIN_BODIES, segment=ODD_TEXT, limit=st.one_of(ODD_TEXT, HUGE_INTS.map(str), HUGE_INTS.map(str)))
def test_admin(http: httpx.Client, log: Log, token: str | None, action: int, body: bytes, segment: str,
               limit: str) -> None:
    headers = {"Authorization": b"Bearer " + token.encode()} if token else {}
    name = quote(segment.encode("utf-8", "surrogatepass"), safe="")
    if action == 0:
        r = http.post("/admin/keys", content=body, headers=headers)
    elif action == 1:
        r = http.post(f"/admin/keys/{name}/{'enable' if len(segment) % 2 else 'disable'}", headers=headers)
    elif action == 2:
        r = http.get("/admin/logs", params={"limit": limit.encode("utf-8", "surrogatepass")}, headers=headers)
    else:
        r = http.get("/admin/keys", headers=headers)
    check(r, log, "openai", (action, body[:500], segment, limit))


@FUZZ
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]), segment=ODD_TEXT, body=RAW_BODIES)
def test_unknown_routes_and_methods(http: httpx.Client, log: Log, method: str, segment: str, body: bytes) -> None:
    path = "/" + quote(segment.encode("utf-8", "surrogatepass"), safe="/:")
    r = http.request(method, path, content=body, headers=key_headers("openai", "good"))
    check(r, log, "any", (method, path))


# ---- the cases the fuzzing found, kept as plain examples -----------------------------------------------

NEST = 990   # about 2 KB of brackets


def _nested(prefix: bytes, suffix: bytes) -> bytes:
    return prefix + b"[" * NEST + b"]" * NEST + suffix


REGRESSIONS = [
    ("openai", "/v1/chat/completions",
     _nested(b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"x":', b"}")),
    ("openai", "/v1/chat/completions", _nested(b'{"model":"claude-sim-sonnet","messages":', b"}")),
    ("anthropic", "/v1/messages", _nested(b'{"model":"claude-sim-sonnet","max_tokens":9,"messages":', b"}")),
    ("anthropic", "/v1/messages", _nested(b'{"model":"gpt-4o-mini","max_tokens":9,"messages":', b"}")),
    ("anthropic", "/v1/messages/count_tokens", _nested(b'{"model":"claude-sim-sonnet","messages":', b"}")),
    ("anthropic", "/v1/messages/count_tokens", b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],'
                                               b'"tools":[{"name":"t","description":5,"input_schema":{}}]}'),
    ("gemini", "/v1beta/models/gemini-2.5-flash:generateContent", _nested(b'{"contents":', b"}")),
    ("gemini", "/v1beta/models/claude-sim-sonnet:streamGenerateContent?alt=sse", _nested(b'{"contents":', b"}")),
    ("gemini", "/v1beta/models/gpt-4o-mini:countTokens", _nested(b"", b"")),
    # a shallow body whose tool-call arguments (a JSON string) nest 3,000 levels: the converter decodes them
    ("openai", "/v1/chat/completions", b'{"model":"claude-sim-sonnet","messages":[{"role":"user","content":"hi"},'
     b'{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f",'
     b'"arguments":"' + b"[" * 3000 + b"]" * 3000 + b'"}}]},{"role":"tool","tool_call_id":"c1","content":"x"}]}'),
    ("openai", "/v1/chat/completions", b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],'
                                       b'"max_tokens":18446744073709551616}'),
    ("openai", "/v1/chat/completions", b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],'
                                       b'"n":18446744073709551616}'),
    ("gemini", "/v1beta/models/claude-sim-sonnet:generateContent",
     b'{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":9223372036854775807}}'),
    ("gemini", "/v1beta/models/gpt-4o-mini:generateContent",
     b'{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"candidateCount":9223372036854775808}}'),
    ("responses", "/v1/responses", _nested(b'{"model":"gpt-resp-mini","input":', b"}")),
    ("responses", "/v1/responses", _nested(b'{"model":"claude-sim-sonnet","input":', b"}")),
    ("responses", "/v1/responses/input_tokens", _nested(b'{"model":"gemini-2.5-flash","input":', b"}")),
    # a replayed function_call whose arguments (a JSON string) nest 3,000 levels, converted for Claude
    ("responses", "/v1/responses", b'{"model":"claude-sim-sonnet","store":false,"input":[{"role":"user","content":'
     b'"hi"},{"type":"function_call","call_id":"c1","name":"f","arguments":"' + b"[" * 3000 + b"]" * 3000
     + b'"},{"type":"function_call_output","call_id":"c1","output":"x"}]}'),
    ("responses", "/v1/responses", b'{"model":"gpt-resp-mini","input":"hi","max_output_tokens":18446744073709551616}'),
    ("responses", "/v1/responses", b'{"model":"gemini-2.5-flash","input":"hi","max_output_tokens":9}'),
]


@pytest.mark.parametrize("surface, path, body", REGRESSIONS, ids=[f"{i}" for i in range(len(REGRESSIONS))])
def test_found_cases_get_a_4xx_in_the_callers_shape(http: httpx.Client, log: Log, surface: str, path: str,
                                                   body: bytes) -> None:
    headers = {**key_headers(surface, "quota"), "anthropic-version": b"2023-06-01"}
    r = http.post(path, content=body, headers=headers)
    check(r, log, surface, (path, body[:300]))
    assert 400 <= r.status_code < 500, r.text


@pytest.mark.parametrize("limit", ["-1", "0", str(-2**64), str(2**64), "ten"])
def test_admin_log_limits_outside_1_to_1000_are_refused_or_capped(http: httpx.Client, log: Log, limit: str) -> None:
    r = http.get("/admin/logs", params={"limit": limit}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    check(r, log, "openai", limit)
    if int(limit) if limit.lstrip("-").isdigit() and int(limit) > 0 else False:
        assert r.status_code == 200 and len(r.json()["data"]) <= 1000
    else:
        assert r.status_code == 400 and "limit" in r.json()["error"]["message"]
