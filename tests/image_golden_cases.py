"""Client requests for the golden image conversion cases (tests/golden/images/<case>/).

Image requests are not a pair of chat protocols (tests/golden_cases.py) but an operation of their own
(protocols/images): each case names its client side (`images` and `image_edits`: the OpenAI images
API, `gemini`: a native generateContent asking for IMAGE, `chat`: OpenAI chat to an image model) and
its channel's protocol. `python tests/image_golden_cases.py` (re)writes every case from these
requests, the current converters and the simulator's answers; `python tests/image_golden_cases.py
chat_gemini` writes only the cases named. Review the diff before committing.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from polyrelay.sim.openai_images import png

IMAGE_GOLDEN = Path(__file__).parent / "golden" / "images"
# images to edit: their private chunks (ff bf, fb ff bf) put '+' and '/' in their base64
IMAGE_A = png(2, 2, b"\xff\xbf")
IMAGE_B = png(3, 2, b"\xfb\xff\xbf\x01")
MASK = png(2, 2, b"\x00\xff\xbf")
BOUNDARY = "golden-images-boundary"
GEMINI_MODEL = "gemini-2.5-flash-image"
OPENAI_MODEL = "gpt-image-1"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _form(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A multipart edit as the openai SDK sends it (httpx's encoder), with a fixed boundary."""
    request = httpx.Request("POST", "http://gateway.invalid/v1/images/edits", data=fields,
                            files=[(name, (filename, content, "image/png")) for name, filename, content in files],
                            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    return request.read(), request.headers["content-type"]


_EDIT_BODY, EDIT_CONTENT_TYPE = _form(
    {"model": GEMINI_MODEL, "prompt": "Put the cat from the first picture on the sofa of the second", "n": "1",
     "size": "1024x1024"},
    [("image[]", "cat.png", IMAGE_A), ("image[]", "sofa.png", IMAGE_B), ("mask", "mask.png", MASK)])

# name -> client (its side), channel protocol, client model, upstream model, request (JSON, or a multipart body)
CASES: dict[str, dict[str, Any]] = {
    # images API -> Gemini image model: size -> the nearest aspectRatio, quality dropped
    "generate_gemini_n1": {
        "client": "images", "upstream": "gemini", "model": GEMINI_MODEL, "upstream_model": GEMINI_MODEL,
        "request": {"model": GEMINI_MODEL, "prompt": "A lighthouse at dusk", "n": 1, "size": "1536x1024",
                    "quality": "high", "response_format": "b64_json"}},
    # n=2: two generateContent calls (the image models answer one candidate), usage summed, data URLs for `url`
    "generate_gemini_n2": {
        "client": "images", "upstream": "gemini", "model": GEMINI_MODEL, "upstream_model": GEMINI_MODEL,
        "request": {"model": GEMINI_MODEL, "prompt": "Two views of a red bicycle", "n": 2, "size": "1024x1536",
                    "response_format": "url"}},
    # an edit with two images (multipart image[]) and a mask (dropped): inlineData parts before the prompt
    "edit_gemini_two_images": {
        "client": "image_edits", "upstream": "gemini", "model": GEMINI_MODEL, "upstream_model": GEMINI_MODEL,
        "content_type": EDIT_CONTENT_TYPE, "request": _EDIT_BODY},
    # the seed's native nano-banana request to a model on an OpenAI channel: an edit (multipart, raw bytes),
    # aspectRatio 3:4 -> 1024x1536 (reported as changed), TEXT dropped
    "native_gemini_edit_openai": {
        "client": "gemini", "upstream": "openai_chat", "model": "nano-on-openai", "upstream_model": OPENAI_MODEL,
        "request": {"contents": [{"role": "user", "parts": [
            {"inlineData": {"mimeType": "image/png", "data": b64(IMAGE_A)}},
            {"text": "Make this cat wear a tiny hat"}]}],
            "generationConfig": {"responseModalities": ["TEXT", "IMAGE"], "imageConfig": {"aspectRatio": "3:4"}}}},
    # no image in: a generation (JSON)
    "native_gemini_generate_openai": {
        "client": "gemini", "upstream": "openai_chat", "model": "nano-on-openai", "upstream_model": OPENAI_MODEL,
        "request": {"contents": [{"role": "user", "parts": [{"text": "A bowl of ramen, top view"}]}],
                    "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "1:1"}}}},
    # chat to an image model: markdown image in content, message.images (OpenRouter), streamed too
    "chat_openai_generate": {
        "client": "chat", "upstream": "openai_chat", "model": OPENAI_MODEL, "upstream_model": OPENAI_MODEL,
        "request": {"model": OPENAI_MODEL, "size": "1536x1024",
                    "messages": [{"role": "system", "content": "You draw."},
                                 {"role": "user", "content": "A paper boat on a pond"}]}},
    "chat_openai_edit": {
        "client": "chat", "upstream": "openai_chat", "model": OPENAI_MODEL, "upstream_model": OPENAI_MODEL,
        "request": {"model": OPENAI_MODEL, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Make the background blue"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(IMAGE_A)}"}}]}]}},
    # a Gemini image model behind chat: its text part, then the image (TEXT+IMAGE asked for)
    "chat_gemini_generate": {
        "client": "chat", "upstream": "gemini", "model": GEMINI_MODEL, "upstream_model": GEMINI_MODEL,
        "request": {"model": GEMINI_MODEL, "image_config": {"aspect_ratio": "16:9"},
                    "messages": [{"role": "user", "content": "A mountain village in winter"}]}},
    "chat_gemini_edit": {
        "client": "chat", "upstream": "gemini", "model": GEMINI_MODEL, "upstream_model": GEMINI_MODEL,
        "request": {"model": GEMINI_MODEL, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(IMAGE_A)}"}},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(IMAGE_B)}"}},
            {"type": "text", "text": "Combine these two pictures"}]}]}},
}

for _image in (IMAGE_A, IMAGE_B, MASK):
    assert "+" in b64(_image) and "/" in b64(_image), "test images must have '+' and '/' in their base64"


def client_request_file(case: str) -> str:
    return "client_request.multipart" if isinstance(CASES[case]["request"], bytes) else "client_request.json"


def write_all(only: set[str] | None = None) -> None:
    """Write every case, or only the cases named in `only`."""
    from test_image_golden import expected_outputs

    for name, case in CASES.items():
        if only and name not in only:
            continue
        folder = IMAGE_GOLDEN / name
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.iterdir():
            stale.unlink()
        meta = {k: v for k, v in case.items() if k != "request"}
        (folder / "case.json").write_text(json.dumps(meta, indent=1) + "\n")
        request = case["request"]
        body = request if isinstance(request, bytes) else json.dumps(request, indent=1).encode() + b"\n"
        (folder / client_request_file(name)).write_bytes(body)
        for file_name, content in expected_outputs(folder).items():
            (folder / file_name).write_bytes(content)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent / "conversion"))   # test_image_golden
    write_all(set(sys.argv[1:]) or None)
