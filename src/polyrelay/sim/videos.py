"""OpenAI's video API (Sora), simulated: jobs that progress with time, fail when told, and serve
generated content bytes (never held whole: streamed from one repeated block).

Directives in the prompt (sim/script.py): video_ms=N (time from create to the end, default 600),
video_fail (the job ends `failed`), video_kb=N (size of the video content, default 256 KB),
video_cut_kb=N (the content stops after N KB, the connection closed without its end).
Validation is strict, as the real API's: prompt required; seconds 4, 8 or 12; one of the four sizes;
a known model; no unknown fields; `input_reference` only as an image or video file."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import msgspec

from polyrelay.sim.openai_chat import error_reply
from polyrelay.sim.replies import SimBytes, SimReply
from polyrelay.sim.script import Script

MODELS = ("sora-2", "sora-2-pro", "sora-2-2025-10-06", "sora-2-pro-2025-10-06", "sora-2-2025-12-08")
SECONDS = ("4", "8", "12")
SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
FIELDS = {"prompt", "model", "seconds", "size", "input_reference"}
REFERENCE_TYPES = ("image/jpeg", "image/png", "image/webp", "video/mp4")
VARIANTS = {"video": "video/mp4", "thumbnail": "image/webp", "spritesheet": "image/jpeg"}
_SMALL_VARIANT_BYTES = 4096


@dataclass
class SimJob:
    id: str
    model: str
    prompt: str
    seconds: str
    size: str
    started: float
    duration_s: float
    fail: bool
    content_bytes: int
    remixed_from: str | None = None
    cut_bytes: int = -1

    def state(self) -> tuple[str, int]:
        elapsed = time.monotonic() - self.started
        if elapsed >= self.duration_s:
            return ("failed", 0) if self.fail else ("completed", 100)
        share = elapsed / self.duration_s if self.duration_s else 1.0
        return ("queued", 0) if share < 0.1 else ("in_progress", min(99, int(share * 100)))

    def render(self) -> bytes:
        status, progress = self.state()
        error = {"code": "video_generation_failed", "message": "simulated failure"} if status == "failed" else None
        created = int(time.time())
        return msgspec.json.encode({
            "id": self.id, "object": "video", "model": self.model, "status": status, "progress": progress,
            "created_at": created, "completed_at": created if status == "completed" else None,
            "expires_at": None, "prompt": self.prompt, "seconds": self.seconds, "size": self.size,
            "remixed_from_video_id": self.remixed_from, "error": error})


class SimVideos:
    def __init__(self) -> None:
        self.jobs: dict[str, SimJob] = {}

    def handle(self, method: str, path: str, body: bytes, headers: dict[str, str], query: dict[str, list[str]],
               script: Script) -> SimReply | SimBytes:
        if script.status != 200:
            return error_reply(script.status, f"simulated status {script.status}")
        rest = path.removeprefix("/v1/videos").strip("/")
        parts = rest.split("/") if rest else []
        if not parts:
            if method == "POST":
                return self._create(body, headers.get("content-type", ""), script)
            return error_reply(405, "simulator: method not allowed")
        job = self.jobs.get(parts[0])
        if job is None:
            return error_reply(404, f"Video '{parts[0]}' not found")
        if len(parts) == 1 and method == "GET":
            return SimReply(200, job.render())
        if len(parts) == 1 and method == "DELETE":
            del self.jobs[job.id]
            return SimReply(200, msgspec.json.encode({"id": job.id, "object": "video.deleted", "deleted": True}))
        if parts[1:] == ["content"] and method == "GET":
            return self._content(job, (query.get("variant") or ["video"])[0])
        if parts[1:] == ["remix"] and method == "POST":
            return self._remix(job, body, script)
        return error_reply(404, "simulator: unknown video route")

    def _create(self, body: bytes, content_type: str, script: Script) -> SimReply:
        if content_type.startswith("multipart/form-data"):
            fields = _multipart(body, content_type)
        elif content_type.startswith("application/json"):
            data = msgspec.json.decode(body)
            if not isinstance(data, dict):
                return error_reply(400, "Invalid request: body must be an object")
            fields = data
        else:
            return error_reply(400, f"Invalid content type {content_type!r}")
        unknown = set(fields) - FIELDS
        if unknown:
            return error_reply(400, f"Unrecognized request argument supplied: {sorted(unknown)[0]}")
        prompt, model = fields.get("prompt"), fields.get("model", "sora-2")
        seconds, size = fields.get("seconds", "4"), fields.get("size", "720x1280")
        if not isinstance(prompt, str) or not prompt:
            return error_reply(400, "Missing required parameter: 'prompt'.")
        if model not in MODELS:
            return error_reply(400, f"Invalid value for 'model': {model!r}")
        if seconds not in SECONDS:
            return error_reply(400, f"Invalid value for 'seconds': {seconds!r}; supported values are 4, 8 and 12")
        if size not in SIZES:
            return error_reply(400, f"Invalid value for 'size': {size!r}")
        reference = fields.get("input_reference")
        if reference is not None and (not isinstance(reference, tuple) or reference[0] not in REFERENCE_TYPES):
            return error_reply(400, "input_reference must be an image (jpeg, png, webp) or an mp4 video file")
        return SimReply(200, self._start(model, prompt, seconds, size, script, None).render())

    def _remix(self, source: SimJob, body: bytes, script: Script) -> SimReply:
        data = msgspec.json.decode(body)
        if not isinstance(data, dict) or set(data) != {"prompt"} or not isinstance(data["prompt"], str):
            return error_reply(400, "Invalid request: a remix takes exactly one field, 'prompt'")
        if source.state()[0] != "completed":
            return error_reply(400, f"Video '{source.id}' is not completed and cannot be remixed")
        return SimReply(200, self._start(source.model, data["prompt"], source.seconds, source.size, script,
                                         source.id).render())

    def _start(self, model: str, prompt: str, seconds: str, size: str, script: Script,
               remixed_from: str | None) -> SimJob:
        job = SimJob("video_" + os.urandom(16).hex(), model, prompt, seconds, size, time.monotonic(),
                     script.video_ms / 1000, script.video_fail, script.video_kb * 1024, remixed_from,
                     script.video_cut_kb * 1024 if script.video_cut_kb >= 0 else -1)
        self.jobs[job.id] = job
        return job

    @staticmethod
    def _content(job: SimJob, variant: str) -> SimReply | SimBytes:
        if variant not in VARIANTS:
            return error_reply(400, f"Invalid value for 'variant': {variant!r}")
        if job.state()[0] != "completed":
            return error_reply(400, f"Video '{job.id}' is not completed")
        size = job.content_bytes if variant == "video" else _SMALL_VARIANT_BYTES
        return SimBytes(size, VARIANTS[variant], seed=job.id.encode(), cut=job.cut_bytes if variant == "video" else -1)


def _multipart(body: bytes, content_type: str) -> dict[str, Any]:
    """Fields of a multipart/form-data body, parsed by the standard library (not the gateway's
    parser): text fields as str, files as (content type, size)."""
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise ValueError("not multipart")
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise ValueError("a part without a name")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is not None:
            fields[name] = (part.get_content_type(), len(data))
        else:
            fields[name] = data.decode()
    return fields
