"""multipart/form-data as the images edit endpoint takes it: read without copying the files, and
written back with one field (the model) changed, as slices of the body it came in.

`parse` finds each part's headers and the span of its content; small fields are decoded, files stay
spans of the client's bytes. `with_field` returns the body as a tuple of views in which one
field's value is replaced: the upstream client writes them in turn, so nothing holds the body twice."""

from __future__ import annotations

from dataclasses import dataclass, field

from polyrelay.errors import GatewayError

MAX_FIELD_BYTES = 64 * 1024   # a text field (the prompt) larger than this is refused
MAX_PARTS = 64


@dataclass(slots=True)
class Part:
    name: str
    filename: str | None
    content_type: str | None
    start: int   # the content's span in the body
    end: int


@dataclass(slots=True)
class Form:
    boundary: bytes
    fields: dict[str, str] = field(default_factory=dict)   # text parts (the last of a repeated name)
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)   # where a text part's value is
    files: list[Part] = field(default_factory=list)


def _bad(message: str) -> GatewayError:
    return GatewayError(400, "invalid_request", f"the multipart body is malformed: {message}")


def boundary_of(content_type: str | None) -> bytes:
    """The boundary of a multipart/form-data content type (400 when it is not one)."""
    if not content_type or not content_type.lower().startswith("multipart/form-data"):
        raise GatewayError(400, "invalid_request", "this endpoint takes multipart/form-data (an image upload)")
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary" and value:
            value = value.strip('"')
            if 0 < len(value) <= 200:
                return value.encode("latin-1")
    raise _bad("the content type names no boundary")


def _disposition(value: str) -> tuple[str | None, str | None]:
    name = filename = None
    for param in value.split(";")[1:]:
        key, _, raw = param.strip().partition("=")
        text = raw.strip()
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = text[1:-1]
        if key.lower() == "name":
            name = text
        elif key.lower() == "filename":
            filename = text
    return name, filename


def parse(body: bytes, content_type: str | None) -> Form:
    boundary = boundary_of(content_type)
    form = Form(boundary)
    delimiter = b"--" + boundary
    if not body.startswith(delimiter):
        raise _bad("it does not start with the boundary")
    pos = len(delimiter)
    separator = b"\r\n" + delimiter
    while True:
        if body.startswith(b"--", pos):
            return form   # the closing delimiter
        if not body.startswith(b"\r\n", pos):
            raise _bad("a boundary is not followed by a line break")
        head_end = body.find(b"\r\n\r\n", pos + 2, pos + 2 + 16 * 1024)
        if head_end < 0:
            raise _bad("a part's headers do not end")
        name = filename = ctype = None
        for line in body[pos + 2:head_end].decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-disposition":
                name, filename = _disposition(value.strip())
            elif key.strip().lower() == "content-type":
                ctype = value.strip()
        start = head_end + 4
        end = body.find(separator, start)
        if end < 0:
            raise _bad("a part does not end with the boundary")
        if not name:
            raise _bad("a part has no name")
        if filename is not None or len(form.files) + len(form.fields) >= MAX_PARTS:
            form.files.append(Part(name, filename, ctype, start, end))
        else:
            if end - start > MAX_FIELD_BYTES:
                raise GatewayError(400, "invalid_request", f"the field '{name}' is larger than "
                                   f"{MAX_FIELD_BYTES // 1024} KB", param=name)
            form.fields[name] = body[start:end].decode("utf-8", "replace")
            form.spans[name] = (start, end)
        pos = end + len(separator)
        if len(form.files) + len(form.fields) > MAX_PARTS:
            raise _bad(f"more than {MAX_PARTS} parts")


def with_field(body: bytes, form: Form, name: str, value: str) -> tuple[bytes | memoryview, ...]:
    """`body` with the text field `name` set to `value`, as views of `body` around the new value."""
    span = form.spans.get(name)
    if span is None:
        raise KeyError(name)
    view = memoryview(body)
    return view[:span[0]], value.encode(), view[span[1]:]


def render(boundary: bytes, fields: list[tuple[str, str]],
           files: list[tuple[str, str, str, bytes]]) -> tuple[bytes, ...]:
    """A multipart body of text `fields` and `files` (name, filename, content type, content), as
    parts to send in turn (the files are not copied into one buffer)."""
    out: list[bytes] = []
    for name, value in fields:
        out.append(b"--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
                   % (boundary, name.encode(), value.encode()))
    for name, filename, ctype, content in files:
        out.append(b"--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                   b"Content-Type: %s\r\n\r\n" % (boundary, name.encode(), filename.encode(), ctype.encode()))
        out.append(content)
        out.append(b"\r\n")
    out.append(b"--%s--\r\n" % boundary)
    return tuple(out)


__all__ = ["Form", "Part", "boundary_of", "parse", "render", "with_field"]
