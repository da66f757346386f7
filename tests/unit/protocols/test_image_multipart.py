"""The multipart reader of image edits: files stay spans of the body, and the model field is
re-emitted as views around the new value (protocols/images/multipart.py)."""

from __future__ import annotations

import httpx
import pytest

from polyrelay.errors import GatewayError
from polyrelay.protocols.images import multipart, peek_form


def _form_body() -> tuple[bytes, str, bytes]:
    image = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40 + b"\r\n--not-the-boundary\r\n"
    request = httpx.Request("POST", "http://x/v1/images/edits", data={"model": "public-name", "prompt": "p", "n": "2"},
                            files=[("image[]", ("a.png", image, "image/png")),
                                   ("image[]", ("b.png", image, "image/png"))])
    return request.read(), request.headers["content-type"], image


def test_files_are_spans_and_fields_are_read() -> None:
    body, ctype, image = _form_body()
    form = multipart.parse(body, ctype)
    assert form.fields == {"model": "public-name", "prompt": "p", "n": "2"}
    assert [(p.name, p.filename, p.content_type) for p in form.files] == [("image[]", "a.png", "image/png"),
                                                                          ("image[]", "b.png", "image/png")]
    assert all(body[p.start:p.end] == image for p in form.files)
    peek = peek_form(form, ctype)
    assert peek.model == "public-name" and peek.n == 2


def test_model_reemitted_as_views_of_the_body() -> None:
    body, ctype, image = _form_body()
    form = multipart.parse(body, ctype)
    parts = multipart.with_field(body, form, "model", "upstream-name")
    assert all(isinstance(p, memoryview) and p.obj is body for p in (parts[0], parts[2]))   # not copied
    rebuilt = b"".join(bytes(p) for p in parts)
    again = multipart.parse(rebuilt, ctype)
    assert again.fields["model"] == "upstream-name"
    assert [rebuilt[p.start:p.end] for p in again.files] == [image, image]


@pytest.mark.parametrize("body, ctype, message", [
    (b"{}", "application/json", "multipart/form-data"),
    (b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv", "multipart/form-data; boundary=b", "does not end"),
    (b"junk", "multipart/form-data; boundary=b", "does not start"),
    (b"--b--\r\n", "multipart/form-data", "no boundary"),
])
def test_malformed_bodies_are_400s(body: bytes, ctype: str, message: str) -> None:
    with pytest.raises(GatewayError) as err:
        multipart.parse(body, ctype)
    assert err.value.status == 400 and message in err.value.message
