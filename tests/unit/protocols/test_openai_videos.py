"""The video API's wire module: multipart bodies read and written byte-exactly (a file holding CRLFs
and boundary-like text, quotes in a file name), JSON and multipart creates read alike, bad input a
400 naming the field."""

from __future__ import annotations

import pytest

from polyrelay.errors import GatewayError
from polyrelay.protocols import openai_videos as wire

NASTY = b"\r\n--polyrelay-\r\n\r\n--\x00\xff" * 500


def test_multipart_round_trip_keeps_files_byte_exact() -> None:
    part = wire.FilePart('my "ref".png', "image/png", NASTY)
    body, content_type = wire.render_multipart({"prompt": "caf\u00e9 \u2603", "seconds": "8"},
                                               {"input_reference": part})
    fields, files = wire.parse_multipart(body, content_type)
    assert fields == {"prompt": "caf\u00e9 \u2603", "seconds": "8"}
    assert files["input_reference"].data == NASTY
    assert files["input_reference"].filename == 'my "ref".png'
    assert files["input_reference"].content_type == "image/png"


def test_json_and_multipart_creates_read_alike() -> None:
    from_json = wire.parse_create(b'{"prompt": "a cat", "seconds": 8, "size": "1280x720"}', "application/json")
    body, content_type = wire.render_multipart({"prompt": "a cat", "seconds": "8", "size": "1280x720"}, {})
    from_form = wire.parse_create(body, content_type)
    assert from_json == from_form
    assert (from_json.model, from_json.seconds, from_json.size) == ("sora-2", 8, "1280x720")
    defaults = wire.parse_create(b'{"prompt": "x"}', None)
    assert (defaults.seconds, defaults.size) == (4, "720x1280")


def test_the_upstream_body_carries_the_upstream_model_and_the_file() -> None:
    req = wire.parse_create(*reversed(wire.render_multipart(
        {"prompt": "p", "model": "public-name"},
        {"input_reference": wire.FilePart("r.png", "image/png", NASTY)})[::-1]))
    body, content_type = wire.render_create(req, "sora-2")
    fields, files = wire.parse_multipart(body, content_type)
    assert fields["model"] == "sora-2" and files["input_reference"].data == NASTY
    plain, plain_type = wire.render_create(wire.parse_create(b'{"prompt": "p"}', None), "sora-2-pro")
    assert plain_type == "application/json" and b'"model":"sora-2-pro"' in plain


@pytest.mark.parametrize(("body", "content_type", "param"), [
    (b'{"model": "sora-2"}', "application/json", "prompt"),
    (b'{"prompt": "x", "seconds": "0"}', "application/json", "seconds"),
    (b'{"prompt": "x", "seconds": "121"}', "application/json", "seconds"),
    (b'{"prompt": "x", "seconds": 4.5}', "application/json", "seconds"),
    (b'{"prompt": "x", "size": "big"}', "application/json", "size"),
    (b'{"prompt": "x", "model": ["a"]}', "application/json", "model"),
    (b'{"prompt": "x", "input_reference": "http://x"}', "application/json", "input_reference"),
    (b"[1]", "application/json", None),
    (b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n", "multipart/form-data; boundary=b", None),
    (b"--b\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nx", "multipart/form-data; boundary=b", None),
    (b"whatever", "multipart/form-data", None),
])
def test_bad_creates_are_400s_naming_the_field(body: bytes, content_type: str, param: str | None) -> None:
    with pytest.raises(GatewayError) as err:
        wire.parse_create(body, content_type)
    assert err.value.status == 400 and err.value.param == param


def test_an_unreadable_upstream_job_is_a_502() -> None:
    for body in (b"<html>", b'{"id": "v", "status": "exploded"}', b'{"status": "queued"}', b'{"id": ""}',
                 b'{"id": "../../admin"}', b'{"id": ".."}', b'{"id": "v?variant=x"}', b'{"id": "v\\r\\nHost: evil"}'):
        with pytest.raises(GatewayError) as err:
            wire.parse_job(body)
        assert err.value.status == 502
