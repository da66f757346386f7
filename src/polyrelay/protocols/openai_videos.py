"""OpenAI's video API (Sora) on the wire: a job API, not a chat-like protocol, so it is this one
module and not a package on the IR (nothing converts to or from it; it passes through to OpenAI
channels, with the model renamed and the ids mapped to the gateway's).

    client body (JSON, or multipart with `input_reference`) -> parse_create -> VideoRequest
    VideoRequest -> render_create(upstream model) -> upstream body (JSON, or multipart again)
    upstream job JSON -> parse_job -> UpstreamJob        (the status the gateway stores)
    stored job -> render_video / render_list / render_deleted -> client JSON

Shapes: https://platform.openai.com/docs/api-reference/videos (the `openai` SDK's types/video.py)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from polyrelay.errors import GatewayError, invalid_request

DEFAULT_MODEL = "sora-2"
DEFAULT_SECONDS = 4
DEFAULT_SIZE = "720x1280"
MAX_SECONDS = 120            # the reservation is seconds x price: bounded, whatever a client sends
_SIZE = re.compile(r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$")
_UPSTREAM_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,199}\Z")
STATUSES = ("queued", "in_progress", "completed", "failed")
OPEN = ("queued", "in_progress")
VARIANTS = ("video", "thumbnail", "spritesheet")


@dataclass(slots=True)
class FilePart:
    """An uploaded file of a multipart body (the reference image or video)."""

    filename: str
    content_type: str
    data: bytes


@dataclass(slots=True)
class VideoRequest:
    model: str
    prompt: str
    seconds: int
    size: str
    reference: FilePart | None = None
    # other fields as they came (strings), forwarded as they are: the upstream judges them
    extra: dict[str, str] = field(default_factory=dict)


class UpstreamError(msgspec.Struct):
    code: str | None = None
    message: str | None = None


class UpstreamJob(msgspec.Struct):
    """The parts of an upstream's video object the gateway keeps."""

    id: str
    status: str = "queued"
    progress: int | float | None = 0
    error: UpstreamError | None = None
    completed_at: int | None = None


# ---- client requests ------------------------------------------------------------------------------

def parse_create(body: bytes, content_type: str | None) -> VideoRequest:
    """`POST /v1/videos` as JSON or multipart/form-data (the SDK always sends multipart)."""
    if content_type and content_type.lower().startswith("multipart/form-data"):
        fields, files = parse_multipart(body, content_type)
    else:
        fields, files = _json_fields(body), {}
    reference = files.pop("input_reference", None)
    if files:
        raise invalid_request(f"unexpected file field '{next(iter(files))}'", param=next(iter(files)))
    prompt = fields.pop("prompt", "")
    if not prompt.strip():
        raise invalid_request("'prompt' is required", param="prompt")
    model = fields.pop("model", "") or DEFAULT_MODEL
    seconds = _seconds(fields.pop("seconds", ""))
    size = fields.pop("size", "") or DEFAULT_SIZE
    if not _SIZE.match(size):
        raise invalid_request(f"'size' must be WIDTHxHEIGHT like {DEFAULT_SIZE}, not {size[:40]!r}", param="size")
    return VideoRequest(model, prompt, seconds, size, reference, fields)


def _json_fields(body: bytes) -> dict[str, str]:
    try:
        data = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        raise invalid_request("the request body must be a JSON object or multipart/form-data") from None
    if not isinstance(data, dict):
        raise invalid_request("the request body must be a JSON object")
    out: dict[str, str] = {}
    for name, value in data.items():
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            out[name] = str(value)
        elif value is not None:
            raise invalid_request(f"'{name}' must be a string", param=name)
    if "input_reference" in out:
        raise invalid_request("'input_reference' must be uploaded as a file (multipart/form-data)",
                              param="input_reference")
    return out


def _seconds(value: str) -> int:
    if not value:
        return DEFAULT_SECONDS
    if not value.isdigit() or not 1 <= int(value) <= MAX_SECONDS:
        raise invalid_request(f"'seconds' must be a whole number of seconds from 1 to {MAX_SECONDS} "
                              f"(Sora: 4, 8 or 12), not {value[:20]!r}", param="seconds")
    return int(value)


def parse_remix(body: bytes) -> str:
    """`POST /v1/videos/{id}/remix`: the new prompt."""
    fields = _json_fields(body)
    prompt = fields.get("prompt", "")
    if not prompt.strip():
        raise invalid_request("'prompt' is required", param="prompt")
    return prompt


def variant_of(value: str | None) -> str:
    if value is None or value == "":
        return "video"
    if value not in VARIANTS:
        raise invalid_request(f"'variant' must be one of {', '.join(VARIANTS)}", param="variant")
    return value


# ---- upstream requests and answers --------------------------------------------------------------

def render_create(req: VideoRequest, upstream_model: str) -> tuple[bytes, str]:
    """The upstream body and its content type: JSON, or multipart when a file goes with it."""
    fields = {"model": upstream_model, "prompt": req.prompt, "seconds": str(req.seconds), "size": req.size,
              **req.extra}
    if req.reference is None:
        return msgspec.json.encode(fields), "application/json"
    return render_multipart(fields, {"input_reference": req.reference})


def render_remix(prompt: str) -> bytes:
    return msgspec.json.encode({"prompt": prompt})


def parse_job(body: bytes) -> UpstreamJob:
    """An upstream's video object; one that cannot be read is the upstream's fault (502)."""
    try:
        job = msgspec.json.decode(body, type=UpstreamJob)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        raise GatewayError(502, "upstream", "the upstream sent a video job that cannot be read") from None
    if job.status not in STATUSES:
        raise GatewayError(502, "upstream", f"the upstream sent a video job with status {job.status[:30]!r}")
    if not _UPSTREAM_ID.match(job.id):   # it goes into the URLs of later calls: nothing that could re-address them
        raise GatewayError(502, "upstream", "the upstream sent a video job id that is not a plain identifier")
    return job


def progress_of(job: UpstreamJob) -> int:
    if job.status == "completed":
        return 100
    value = job.progress or 0
    return max(0, min(100, int(value)))


def error_json(job: UpstreamJob) -> str | None:
    if job.status != "failed":
        return None
    err = job.error or UpstreamError()
    return msgspec.json.encode({"code": err.code or "video_generation_failed",
                                "message": err.message or "the video could not be generated"}).decode()


# ---- client answers -------------------------------------------------------------------------------

def video_object(row: Any) -> dict[str, Any]:
    """A stored job (a `video_jobs` row) as OpenAI's video object, with the gateway's ids."""
    created = row.created_at // 1000
    return {
        "id": row.id, "object": "video", "model": row.model, "status": row.status,
        "progress": row.progress, "created_at": created,
        "completed_at": None if row.completed_at is None else row.completed_at // 1000,
        "expires_at": None, "prompt": row.prompt, "seconds": str(row.seconds), "size": row.size,
        "remixed_from_video_id": row.remixed_from,
        "error": None if row.error is None else msgspec.json.decode(row.error),
    }


def render_video(row: Any) -> bytes:
    return msgspec.json.encode(video_object(row))


def render_list(rows: list[Any], has_more: bool) -> bytes:
    data = [video_object(r) for r in rows]
    return msgspec.json.encode({"object": "list", "data": data, "has_more": has_more,
                                "first_id": data[0]["id"] if data else None,
                                "last_id": data[-1]["id"] if data else None})


def render_deleted(video_id: str) -> bytes:
    return msgspec.json.encode({"id": video_id, "object": "video.deleted", "deleted": True})


# ---- multipart/form-data --------------------------------------------------------------------------

_BOUNDARY = re.compile(r'boundary=(?:"([^"]{1,200})"|([^;\s]{1,200}))', re.IGNORECASE)
_DISPOSITION = re.compile(r'\b(name|filename)="((?:[^"\\]|\\.)*)"', re.IGNORECASE)
MAX_PARTS = 64


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, FilePart]]:
    """Text fields and files of a multipart/form-data body (RFC 7578); malformed: 400."""
    m = _BOUNDARY.search(content_type)
    if m is None:
        raise invalid_request("multipart/form-data without a boundary")
    delimiter = b"--" + (m.group(1) or m.group(2)).encode("latin-1")
    pieces = body.split(delimiter)
    if len(pieces) < 3 or not pieces[-1].startswith(b"--"):
        raise invalid_request("the multipart body is malformed (no closing boundary)")
    if len(pieces) - 2 > MAX_PARTS:
        raise invalid_request(f"the multipart body has more than {MAX_PARTS} parts")
    fields: dict[str, str] = {}
    files: dict[str, FilePart] = {}
    for piece in pieces[1:-1]:
        head, sep, data = piece.partition(b"\r\n\r\n")
        if not sep or not data.endswith(b"\r\n"):
            raise invalid_request("the multipart body is malformed (a part without headers)")
        data = data[:-2]
        headers = _part_headers(head)
        params = {k.lower(): _unquote(v) for k, v in _DISPOSITION.findall(headers.get("content-disposition", ""))}
        name = params.get("name")
        if not name:
            raise invalid_request("a multipart part has no name")
        if "filename" in params:
            files[name] = FilePart(params["filename"], headers.get("content-type", "application/octet-stream"), data)
        else:
            try:
                fields[name] = data.decode("utf-8")
            except UnicodeDecodeError:
                raise invalid_request(f"the multipart field '{name}' is not UTF-8 text", param=name) from None
    return fields, files


def _part_headers(head: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in head.decode("latin-1").split("\r\n"):
        name, colon, value = line.partition(":")
        if colon:
            out[name.strip().lower()] = value.strip()
    return out


def render_multipart(fields: dict[str, str], files: dict[str, FilePart]) -> tuple[bytes, str]:
    boundary = "polyrelay-" + os.urandom(12).hex()
    out: list[bytes] = []
    for name, value in fields.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'.encode()
                   + value.encode() + b"\r\n")
    for name, part in files.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"; '
                   f'filename="{_quote(part.filename)}"\r\nContent-Type: {part.content_type}\r\n\r\n'.encode()
                   + part.data + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def _unquote(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")


__all__ = [
    "DEFAULT_MODEL",
    "OPEN",
    "STATUSES",
    "VARIANTS",
    "FilePart",
    "UpstreamJob",
    "VideoRequest",
    "error_json",
    "parse_create",
    "parse_job",
    "parse_multipart",
    "parse_remix",
    "progress_of",
    "render_create",
    "render_deleted",
    "render_list",
    "render_multipart",
    "render_remix",
    "render_video",
    "variant_of",
    "video_object",
]
