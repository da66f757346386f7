"""Golden image conversion tests: tests/golden/images/<case>/ holds the client's request (JSON, or a
multipart edit), the upstream requests it must become (one per call, with the reported losses; a
multipart body also byte for byte in upstream_request_<i>.multipart), the simulator's answers, and
the answer the client must get (for chat also streamed). Replayed through the real conversion (the
route's peek, protocols/images' sides, call.combine as relay/images.py uses it) with deterministic
ids. Regenerate with `python tests/image_golden_cases.py` and review the diff."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from test_golden import sse_events

from image_golden_cases import CASES, IMAGE_GOLDEN, client_request_file
from polyrelay import ids
from polyrelay.protocols import gemini, openai_chat
from polyrelay.protocols.images import CHAT, SIDES, ImagePeek, ImageRequest, multipart, peek_form, peek_json
from polyrelay.protocols.images import chat_peek as chat_images_peek
from polyrelay.protocols.images.call import ImageCall, ImageSide, Outgoing, combine
from polyrelay.protocols.images.gemini import wants_image
from polyrelay.sim import gemini as sim_gemini
from polyrelay.sim import openai_images as sim_openai_images
from polyrelay.sim.replies import SimReply
from polyrelay.sim.script import read_script

FOLDERS = sorted(p for p in IMAGE_GOLDEN.iterdir() if p.is_dir()) if IMAGE_GOLDEN.is_dir() else []


@pytest.fixture(autouse=True)
def _random_ids_after() -> Iterator[None]:
    yield
    ids.use_random_ids()


def _meta(folder: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((folder / "case.json").read_text())
    return meta


def _client_body(folder: Path) -> bytes:
    return (folder / client_request_file(folder.name)).read_bytes()


def _peek(meta: dict[str, Any], body: bytes, stream: bool = False) -> ImagePeek:
    """The peek the client's route makes (server/images_routes, gemini_routes, openai_routes)."""
    client = meta["client"]
    if client == "images":
        return peek_json(body)
    if client == "image_edits":
        return peek_form(multipart.parse(body, meta["content_type"]), meta["content_type"])
    if client == "gemini":
        peek = gemini.fastpath.peek_request(body, meta["model"], False, None)
        assert wants_image(peek.top), "the route sends this request to the images operation"
        return ImagePeek(ImageRequest(model=meta["model"], n=peek.n), prompt_tokens=0)
    assert client == "chat", client
    if stream:
        whole = json.loads(body)
        body = json.dumps({**whole, "stream": True, "stream_options": {"include_usage": True}}).encode()
    return chat_images_peek(openai_chat.fastpath.peek_request(body), 0)


def _sides(meta: dict[str, Any], peek: ImagePeek) -> tuple[ImageSide, ImageSide]:
    """The client's side and the channel's, as relay/images._converted picks them."""
    surface = "gemini" if meta["client"] == "gemini" else "openai_chat"
    return peek.client or SIDES[surface], SIDES[meta["upstream"]]


def _parse(meta: dict[str, Any], body: bytes) -> tuple[ImageCall, ImageSide, ImageSide]:
    peek = _peek(meta, body)
    client, upstream = _sides(meta, peek)
    return client.parse(peek, body), client, upstream


def _body_bytes(out: Outgoing) -> bytes:
    return out.body if isinstance(out.body, bytes) else b"".join(bytes(piece) for piece in out.body)


def _pretty(value: Any) -> bytes:
    return json.dumps(value, indent=1, ensure_ascii=False).encode() + b"\n"


def upstream_requests(meta: dict[str, Any], body: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The upstream calls a client request becomes (a readable record, with each multipart form
    decomposed) and the multipart bodies by file name."""
    call, _, upstream = _parse(meta, body)
    ids.use_deterministic_ids()
    outgoing, losses = upstream.requests(call, meta["upstream_model"])
    calls: list[dict[str, Any]] = []
    raw: dict[str, bytes] = {}
    for i, out in enumerate(outgoing):
        data = _body_bytes(out)
        record: dict[str, Any] = {"operation": out.operation, "content_type": out.content_type}
        if out.content_type is None:
            record["body"] = json.loads(data)
        else:
            fields, files = sim_openai_images.parse_form(data, out.content_type)
            record["fields"] = fields
            record["files"] = [{"name": n, "filename": f, "content_type": c, "base64": base64.b64encode(d).decode()}
                               for n, f, c, d in files]
            record["body_file"] = f"upstream_request_{i}.multipart"
            raw[record["body_file"]] = data
        calls.append(record)
    return {"calls": calls, "losses": [msgspec.to_builtins(loss) for loss in losses]}, raw


def simulate(meta: dict[str, Any], call: dict[str, Any], raw: dict[str, bytes]) -> Any:
    """The simulator's answer to one upstream call (its JSON)."""
    body = msgspec.json.encode(call["body"]) if call["content_type"] is None else raw[call["body_file"]]
    script = read_script(body, "k")
    if meta["upstream"] == "gemini":
        reply = sim_gemini.handle(body, meta["upstream_model"], "generateContent", False, "k", script)
    elif call["operation"] == "images":
        reply = sim_openai_images.generations(body, script)
    else:
        reply = sim_openai_images.edits(body, {"content-type": call["content_type"]}, script)[0]
    assert isinstance(reply, SimReply) and reply.status == 200, reply
    return json.loads(reply.body)


def client_answers(meta: dict[str, Any], body: bytes, answers: list[Any]) -> dict[str, bytes]:
    """What the client gets for the upstream's answers: the answer, and for chat the stream."""
    call, client, upstream = _parse(meta, body)
    ids.use_deterministic_ids(500)
    result = combine([upstream.read(msgspec.json.encode(a)) for a in answers], call)
    out = {"client_response.json": _pretty(json.loads(client.render(result, call)))}
    if meta["client"] == "chat":
        peek = _peek(meta, body, stream=True)
        ids.use_deterministic_ids(500)
        out["client_response.sse"] = CHAT.render_stream(result, call, peek.include_usage)
    return out


def expected_outputs(folder: Path) -> dict[str, bytes]:
    """What the converters (and the simulator, for the upstream's answers) make of the case today."""
    meta, body = _meta(folder), _client_body(folder)
    record, raw = upstream_requests(meta, body)
    answers = [simulate(meta, call, raw) for call in record["calls"]]
    return {"upstream_request.json": _pretty(record), **raw, "upstream_response.json": _pretty(answers),
            **client_answers(meta, body, answers)}


def _normal(value: Any) -> Any:
    """JSON with timestamps and the simulator's response ids zeroed."""
    if isinstance(value, dict):
        return {k: 0 if k in ("created", "responseId") else _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def test_every_case_has_its_folder() -> None:
    assert [p.name for p in FOLDERS] == sorted(CASES)
    kinds = {(c["client"], c["upstream"]) for c in CASES.values()}
    assert kinds == {("images", "gemini"), ("image_edits", "gemini"), ("gemini", "openai_chat"),
                     ("chat", "openai_chat"), ("chat", "gemini")}


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_request_converts_to_the_expected_upstream_requests(folder: Path) -> None:
    record, raw = upstream_requests(_meta(folder), _client_body(folder))
    assert record == json.loads((folder / "upstream_request.json").read_text())
    for name, data in raw.items():
        assert data == (folder / name).read_bytes(), name
    assert sorted(raw) == sorted(p.name for p in folder.glob("upstream_request_*.multipart"))


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_answer_converts_to_the_expected_client_answer(folder: Path) -> None:
    answers = json.loads((folder / "upstream_response.json").read_text())
    got = client_answers(_meta(folder), _client_body(folder), answers)
    assert _normal(json.loads(got["client_response.json"])) == _normal(
        json.loads((folder / "client_response.json").read_text()))
    if "client_response.sse" in got:
        assert sse_events(got["client_response.sse"]) == sse_events((folder / "client_response.sse").read_bytes())
    else:
        assert not (folder / "client_response.sse").exists()


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_golden_files_are_what_the_generator_makes_today(folder: Path) -> None:
    """The stored answers came from the simulator: asked again, it answers the same (but its clock)."""
    fresh = expected_outputs(folder)
    for name, content in fresh.items():
        stored = (folder / name).read_bytes()
        if name.endswith(".json"):
            assert _normal(json.loads(content)) == _normal(json.loads(stored)), name
        elif name.endswith(".sse"):
            assert sse_events(content) == sse_events(stored), name
        else:
            assert content == stored, name


_BASE64_IMAGE = re.compile(r"iVBORw0KGgo[A-Za-z0-9+/=_-]+")   # a PNG's base64


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_images_are_standard_base64_with_plus_and_slash(folder: Path) -> None:
    """Every image the client gets, and every image sent upstream as base64, has '+' and '/' (so a
    converter that switched alphabets or mangled them would show) and none of '-' or '_'."""
    found = {name: _BASE64_IMAGE.findall((folder / name).read_text())
             for name in ("client_response.json", "upstream_request.json", "upstream_response.json")}
    assert found["client_response.json"] and found["upstream_response.json"]
    call, _, _ = _parse(_meta(folder), _client_body(folder))
    if call.images:
        assert found["upstream_request.json"]
    for name, images in found.items():
        for image in images:
            assert "+" in image and "/" in image and "-" not in image and "_" not in image, (name, image)
