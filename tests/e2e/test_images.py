"""Images over real HTTP with the official SDKs (issue 13, Images): the OpenAI images API
(generate, edit with two images) on an OpenAI channel (pass-through, the model field of a multipart
edit re-emitted) and on a Gemini image model (converted), Google's native nano-banana request on a
Gemini channel and on an OpenAI image channel, spend exact to the micro-dollar, failures free."""

from __future__ import annotations

import base64
import io
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from test_hostile_upstream import RSS_MARGIN_MB, rss_mb, settled_rss_mb

from polyrelay.sim.openai_images import png
from servers import Admin, Server, start_gateway

IMAGE_PRICE = {"1024x1024": 0.04, "1536x1024": 0.06, "1024x1536": 0.06}


def _config(sim_url: str) -> str:
    return f"""
channels:
  - name: openai-images
    type: openai
    base_url: {sim_url}/v1
    api_keys: [sk-up-images]
    models: [gpt-image-1, dall-e-3, gpt-image-mapped]
    model_map: {{gpt-image-mapped: gpt-image-1}}
    image_models: ["gpt-image-*"]
  - name: gemini-images
    type: gemini
    base_url: {sim_url}
    api_keys: [gemini-images-key]
    models: [gemini-2.5-flash-image]
    image_models: [gemini-2.5-flash-image]
  - name: openai-nano
    type: openai
    base_url: {sim_url}/v1
    api_keys: [sk-up-nano]
    models: [nano-on-openai]
    model_map: {{nano-on-openai: gpt-image-1}}
prices:
  gpt-image-1: {{input: 5.0, output: 40.0, max_output: 6240}}
  gpt-image-mapped: {{per_image: {{"1024x1024": 0.04, "1536x1024": 0.06, "1024x1536": 0.06}}}}
  dall-e-3: {{per_image: {{"1024x1024/standard": 0.04, "1024x1024/hd": 0.08, "1792x1024": 0.12, "*": 0.08}}}}
  gemini-2.5-flash-image: {{input: 0.30, output: 30.0}}
  nano-on-openai: {{per_image: 0.05}}
"""


@pytest.fixture(scope="module")
def images_gateway(sim: Server, workdir: Path) -> Iterator[Server]:
    server = start_gateway(_config(sim.url), workdir, db_name="images.db")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def images_admin(images_gateway: Server) -> Admin:
    return Admin(images_gateway.url)


_names = iter(range(10_000))


def _key(admin: Admin, quota: float = 10.0) -> tuple[str, str]:
    name = f"img-{next(_names)}"
    return name, admin.create_key(name, quota=quota)


def _client(gateway: Server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


def _spent(admin: Admin, name: str) -> int:
    return int(admin.key(name)["spent_micros"])


def _sim_requests(sim: Server) -> list[dict]:
    return httpx.get(sim.url + "/sim/requests").json()


def _decoded_png(b64: str) -> bytes:
    raw = base64.b64decode(b64, validate=True)
    assert raw.startswith(b"\x89PNG")
    return raw


def test_generate_on_openai_channel_billed_per_token(images_gateway: Server, images_admin: Admin) -> None:
    name, key = _key(images_admin)
    resp = _client(images_gateway, key).images.generate(model="gpt-image-1", prompt="a red fox", n=2,
                                                        size="1536x1024", quality="high")
    assert len(resp.data) == 2
    for item in resp.data:
        assert "+" in item.b64_json and "/" in item.b64_json
        _decoded_png(item.b64_json)
    assert resp.usage is not None and resp.usage.output_tokens == 2 * 6208
    # 5 USD / 1M input, 40 USD / 1M output: exact to the micro-dollar
    expected = (resp.usage.input_tokens * 5_000_000 + 2 * 6208 * 40_000_000 + 500_000) // 1_000_000
    assert _spent(images_admin, name) == expected


def test_generate_per_image_by_size_with_model_map(images_gateway: Server, images_admin: Admin,
                                                   sim: Server) -> None:
    name, key = _key(images_admin)
    resp = _client(images_gateway, key).images.generate(model="gpt-image-mapped", prompt="a cat", n=3,
                                                        size="1024x1536", quality="low")
    assert len(resp.data) == 3
    assert _spent(images_admin, name) == 3 * 60_000
    sent = [r for r in _sim_requests(sim) if r["path"] == "/v1/images/generations"][-1]
    assert '"model":"gpt-image-1"' in sent["body"].replace(" ", "")


def test_dalle_size_quality_table_and_url_format(images_gateway: Server, images_admin: Admin) -> None:
    name, key = _key(images_admin)
    resp = _client(images_gateway, key).images.generate(model="dall-e-3", prompt="a lighthouse", size="1024x1024",
                                                        quality="hd", response_format="url")
    assert resp.data[0].url and resp.data[0].url.startswith("https://")
    assert resp.data[0].revised_prompt
    assert _spent(images_admin, name) == 80_000   # "1024x1024/hd": no usage reported, billed per image


def test_failed_generation_costs_nothing(images_gateway: Server, images_admin: Admin) -> None:
    name, key = _key(images_admin)
    with pytest.raises(openai.InternalServerError):
        _client(images_gateway, key).images.generate(model="gpt-image-mapped", prompt="boom [[sim:status=500]]")
    with pytest.raises(openai.BadRequestError) as bad:
        _client(images_gateway, key).images.generate(model="gpt-image-mapped", prompt="x", size="999x999")
    assert "999x999" in str(bad.value)
    # converted for a Gemini image model: one of the n calls failing fails the request, free
    with pytest.raises(openai.APIStatusError) as failed:
        _client(images_gateway, key).images.generate(model="gemini-2.5-flash-image", prompt="x [[sim:status=500]]",
                                                     n=3)
    assert failed.value.status_code == 502 and "simulated error 500" in str(failed.value)
    with pytest.raises(openai.BadRequestError):
        _client(images_gateway, key).images.generate(model="gemini-2.5-flash-image", prompt="x [[sim:status=400]]")
    assert _spent(images_admin, name) == 0
    assert images_admin.key(name)["leased_micros"] >= 0


def test_quota_too_small_for_n_images_refused(images_gateway: Server, images_admin: Admin) -> None:
    name, key = _key(images_admin, quota=0.1)   # 0.10 USD: two images at 0.06, not three
    with pytest.raises(openai.RateLimitError):
        _client(images_gateway, key).images.generate(model="gpt-image-mapped", prompt="x", n=3, size="auto")
    assert _spent(images_admin, name) == 0


def test_edit_two_images_multipart_model_reemitted(images_gateway: Server, images_admin: Admin,
                                                   sim: Server) -> None:
    name, key = _key(images_admin)
    first, second = png(16, 16, b"one"), png(8, 24, b"two")
    resp = _client(images_gateway, key).images.edit(
        model="gpt-image-mapped", prompt="put them together", size="1024x1024",
        image=[("a.png", io.BytesIO(first), "image/png"), ("b.png", io.BytesIO(second), "image/png")])
    assert len(resp.data) == 1
    _decoded_png(resp.data[0].b64_json)
    assert _spent(images_admin, name) == 40_000
    form = [r for r in _sim_requests(sim) if r["path"] == "/v1/images/edits"][-1]["form"]
    assert form["fields"]["model"] == "gpt-image-1"   # re-emitted for the upstream
    assert [f["bytes"] for f in form["files"]] == [len(first), len(second)]
    assert [f["sha256_head"] for f in form["files"]] == [first[:16].hex(), second[:16].hex()]


def test_edit_without_image_is_a_clear_400(images_gateway: Server, images_admin: Admin) -> None:
    _, key = _key(images_admin)
    r = httpx.post(images_gateway.url + "/v1/images/edits", headers={"Authorization": f"Bearer {key}"},
                   files={"prompt": (None, "x"), "model": (None, "gpt-image-1")})
    assert r.status_code == 400
    assert "'image' is required" in r.json()["error"]["message"]
    r = httpx.post(images_gateway.url + "/v1/images/edits", headers={"Authorization": f"Bearer {key}",
                                                                     "Content-Type": "application/json"},
                   content=b"{}")
    assert r.status_code == 400 and "multipart/form-data" in r.json()["error"]["message"]


def test_generate_on_gemini_image_model(images_gateway: Server, images_admin: Admin, sim: Server) -> None:
    name, key = _key(images_admin)
    resp = _client(images_gateway, key).images.generate(model="gemini-2.5-flash-image", prompt="a banana",
                                                        n=2, size="1536x1024")
    assert len(resp.data) == 2
    for item in resp.data:
        assert "+" in item.b64_json and "/" in item.b64_json
        _decoded_png(item.b64_json)
    calls = [r for r in _sim_requests(sim) if "gemini-2.5-flash-image:generateContent" in r["path"]][-2:]
    assert all('"aspectRatio":"3:2"' in c["body"] for c in calls)
    usage = resp.usage
    assert usage is not None and usage.output_tokens == 2 * 1290
    expected = (usage.input_tokens * 300_000 + 2 * 1290 * 30_000_000 + 500_000) // 1_000_000
    assert _spent(images_admin, name) == expected


def test_edit_on_gemini_image_model(images_gateway: Server, images_admin: Admin, sim: Server) -> None:
    _, key = _key(images_admin)
    first, second = png(4, 4, b"\xfb\xff"), png(4, 4, b"\xff\xfe")
    raw = _client(images_gateway, key).images.with_raw_response.edit(
        model="gemini-2.5-flash-image", prompt="merge", quality="high", size="1024x1024",
        image=[("a.png", io.BytesIO(first), "image/png"), ("b.png", io.BytesIO(second), "image/png")])
    # what Gemini cannot take is said, as for chat conversions
    assert raw.headers["x-polyrelay-dropped"] == ("quality: dropped (Gemini image models have no such setting); "
                                                  "size: changed (sent as aspectRatio 1:1)")
    resp = raw.parse()
    _decoded_png(resp.data[0].b64_json)
    body = [r for r in _sim_requests(sim) if "gemini-2.5-flash-image:generateContent" in r["path"]][-1]["body"]
    assert base64.b64encode(first).decode() in body and base64.b64encode(second).decode() in body


_NATIVE_IMAGE = base64.b64encode(png(6, 8, b"\xfb\xef\xbe")).decode()


def _native_request(client: object, model: str) -> object:
    from google.genai import types

    return client.models.generate_content(  # type: ignore[attr-defined]
        model=model,
        contents=[types.Content(role="user", parts=[
            types.Part(inline_data=types.Blob(mime_type="image/png", data=base64.b64decode(_NATIVE_IMAGE))),
            types.Part(text="Turn this into a watercolor")])],
        config=types.GenerateContentConfig(response_modalities=["IMAGE"],
                                           image_config=types.ImageConfig(aspect_ratio="3:4")))


def _genai(gateway: Server, key: str) -> object:
    from google import genai
    from google.genai import types

    return genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=gateway.url, api_version="v1beta", headers={"Authorization": f"Bearer {key}"}))


def test_native_nano_banana_on_gemini_channel(images_gateway: Server, images_admin: Admin) -> None:
    name, key = _key(images_admin)
    resp = _native_request(_genai(images_gateway, key), "gemini-2.5-flash-image")
    parts = resp.candidates[0].content.parts  # type: ignore[attr-defined]
    images = [p.inline_data for p in parts if p.inline_data]
    assert len(images) == 1 and images[0].data.startswith(b"\x89PNG")
    usage = resp.usage_metadata  # type: ignore[attr-defined]
    expected = (usage.prompt_token_count * 300_000 + 1290 * 30_000_000 + 500_000) // 1_000_000
    assert _spent(images_admin, name) == expected


def test_native_nano_banana_on_openai_channel(images_gateway: Server, images_admin: Admin, sim: Server) -> None:
    name, key = _key(images_admin)
    resp = _native_request(_genai(images_gateway, key), "nano-on-openai")
    parts = resp.candidates[0].content.parts  # type: ignore[attr-defined]
    images = [p.inline_data for p in parts if p.inline_data]
    assert len(images) == 1 and images[0].data.startswith(b"\x89PNG")
    form = [r for r in _sim_requests(sim) if r["path"] == "/v1/images/edits"][-1]["form"]
    assert form["fields"]["model"] == "gpt-image-1" and form["fields"]["size"] == "1024x1536"   # 3:4: portrait
    assert form["files"][0]["sha256_head"] == base64.b64decode(_NATIVE_IMAGE)[:16].hex()
    assert _spent(images_admin, name) == 50_000


def _markdown_images(content: str) -> list[bytes]:
    found = re.findall(r"!\[image\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", content)
    return [_decoded_png(b64) for b64 in found]


def test_chat_to_gemini_image_model_markdown_and_message_images(images_gateway: Server, images_admin: Admin,
                                                                 sim: Server) -> None:
    name, key = _key(images_admin)
    resp = _client(images_gateway, key).chat.completions.create(
        model="gemini-2.5-flash-image", messages=[{"role": "user", "content": "draw a banana"}])
    message = resp.choices[0].message
    assert len(_markdown_images(message.content or "")) == 1
    extra = message.model_extra or {}
    assert extra["images"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert extra["images"][0]["image_url"]["url"] in message.content
    body = [r for r in _sim_requests(sim) if "gemini-2.5-flash-image:generateContent" in r["path"]][-1]["body"]
    assert '"responseModalities":["TEXT","IMAGE"]' in body
    assert resp.usage is not None
    expected = (resp.usage.prompt_tokens * 300_000 + resp.usage.completion_tokens * 30_000_000 + 500_000) // 10**6
    assert resp.usage.completion_tokens >= 1290 and _spent(images_admin, name) == expected


def test_chat_edit_on_openai_image_model_streamed(images_gateway: Server, images_admin: Admin, sim: Server) -> None:
    name, key = _key(images_admin)
    source = png(4, 4, b"\xfb\xff\xbf")
    url = "data:image/png;base64," + base64.b64encode(source).decode()
    stream = _client(images_gateway, key).chat.completions.create(
        model="gpt-image-mapped", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": [{"type": "text", "text": "make it blue"},
                                               {"type": "image_url", "image_url": {"url": url}}]}])
    chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(_markdown_images(content)) == 1
    assert chunks[-1].usage is not None
    form = [r for r in _sim_requests(sim) if r["path"] == "/v1/images/edits"][-1]["form"]
    assert form["fields"]["model"] == "gpt-image-1" and form["fields"]["prompt"] == "make it blue"
    assert form["files"][0]["sha256_head"] == source[:16].hex()
    # no size asked: 0.06 held (the dearest size), 0.04 charged for the 1024x1024 image the answer reports
    assert _spent(images_admin, name) == 40_000


def test_a_model_priced_per_image_only_is_not_served_free_as_chat(images_gateway: Server,
                                                                  images_admin: Admin) -> None:
    """nano-on-openai has only per_image and is in no image_models: a chat (or a streamed Gemini
    request) to it would be a generation billed per token, at no rate; it is refused instead."""
    name, key = _key(images_admin)
    with pytest.raises(openai.BadRequestError) as err:
        _client(images_gateway, key).chat.completions.create(model="nano-on-openai",
                                                            messages=[{"role": "user", "content": "hi"}])
    assert "priced per image only" in str(err.value)
    r = httpx.post(images_gateway.url + "/v1beta/models/nano-on-openai:streamGenerateContent?alt=sse",
                   headers={"x-goog-api-key": key},
                   json={"contents": [{"parts": [{"text": "x"}]}],
                         "generationConfig": {"responseModalities": ["IMAGE"]}})
    assert r.status_code == 400 and "priced per image only" in r.json()["error"]["message"]
    assert _spent(images_admin, name) == 0


# A 20 MB multipart edit keeps the gateway's RSS flat: the body is read once (up to the route's cap),
# its files stay spans of it, and the upstream gets it as views with only the model part re-emitted,
# written as the socket drains (docs/benchmarks.md, "Image edits").
MB = 1024 * 1024


@pytest.mark.slow
def test_twenty_mb_edit_keeps_rss_flat(images_gateway: Server, images_admin: Admin) -> None:
    name, key = _key(images_admin, quota=100.0)
    client = openai.OpenAI(base_url=images_gateway.url + "/v1", api_key=key, max_retries=0, timeout=120)
    big = png(8, 8) + bytes(20 * MB - 200)   # a PNG head, 20 MB in all

    def edit() -> float:
        started = time.perf_counter()
        resp = client.images.edit(model="gpt-image-mapped", prompt="make it pop", size="1024x1024",
                                  image=[("big.png", io.BytesIO(big), "image/png")])
        assert len(resp.data) == 1
        return time.perf_counter() - started

    edit()   # warm-up: the first large body sets the allocator's thresholds
    baseline = settled_rss_mb(images_gateway, 0, wait=1.0)   # the lowest in a second: the warm-up's body freed
    peak = baseline
    seconds = []
    for _ in range(5):
        seconds.append(edit())
        peak = max(peak, rss_mb(images_gateway))
    after = settled_rss_mb(images_gateway, baseline + RSS_MARGIN_MB)
    print(f"\n20 MB edit: RSS baseline {baseline:.0f} MB, highest seen between edits {peak:.0f} MB, "
          f"after 5 edits {after:.0f} MB; {min(seconds) * 1000:.0f}-{max(seconds) * 1000:.0f} ms each")
    assert after < baseline + RSS_MARGIN_MB, f"RSS {baseline:.0f} MB -> {after:.0f} MB"
    assert int(images_admin.key(name)["spent_micros"]) == 6 * 40_000


DEEP = b"[" * 990 + b"]" * 990
BAD_GENERATIONS = [
    b"", b"not json", b"[]", b'{"prompt": "x"}', b'{"model": "gpt-image-1"}', b'{"model": 5, "prompt": "x"}',
    b'{"model": "gpt-image-1", "prompt": "x", "n": 0}', b'{"model": "gpt-image-1", "prompt": "x", "n": 2.5}',
    b'{"model": "gpt-image-1", "prompt": "x", "n": 18446744073709551616}',
    b'{"model": "gpt-image-1", "prompt": "x", "stream": true}', b'{"model": "gpt-image-1", "prompt": ' + DEEP + b"}",
    b'{"model": "gpt-image-1", "prompt": "x", "extra": ' + DEEP + b"}",
    b'{"model": "gpt-image-1", "prompt": "x", "response_format": "gif"}',
    b'{"model": "no-such-model", "prompt": "x"}', b'{"model": "gemini-2.5-flash-image", "prompt": "x", "size": 7}',
]
BAD_FORMS = [
    ("multipart/form-data; boundary=b", b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n"),
    ("multipart/form-data; boundary=b", b"--b\r\n" + b"x" * 20_000),
    ("multipart/form-data; boundary=b", b"--b\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\nmany\r\n--b--\r\n"),
    ("multipart/form-data", b""), ("text/plain", b"hello"),
]
BAD_NATIVE = [
    b'{"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "***"}}, {"text": "x"}]}], '
    b'"generationConfig": {"responseModalities": ["IMAGE"]}}',
    b'{"contents": [{"parts": [{"text": 5}]}], "generationConfig": {"responseModalities": ["IMAGE"]}}',
    b'{"contents": [], "generationConfig": {"responseModalities": ["IMAGE"]}}',
    b'{"contents": ' + DEEP + b', "generationConfig": {"responseModalities": ["IMAGE"]}}',
]


def test_native_request_with_bearer_only_text_and_image(images_gateway: Server, images_admin: Admin) -> None:
    """The seed's example as raw JSON with only a Bearer key: TEXT+IMAGE, aspectRatio 3:4."""
    name, key = _key(images_admin)
    r = httpx.post(images_gateway.url + "/v1beta/models/gemini-2.5-flash-image:generateContent",
                   headers={"Authorization": f"Bearer {key}"}, timeout=30,
                   json={"contents": [{"role": "user", "parts": [
                       {"inlineData": {"mimeType": "image/png", "data": _NATIVE_IMAGE}}, {"text": "a 3:4 poster"}]}],
                         "generationConfig": {"responseModalities": ["TEXT", "IMAGE"],
                                              "imageConfig": {"aspectRatio": "3:4"}}})
    assert r.status_code == 200, r.text
    parts = r.json()["candidates"][0]["content"]["parts"]
    assert [("text" in p, "inlineData" in p) for p in parts] == [(True, False), (False, True)]
    image = base64.b64decode(parts[1]["inlineData"]["data"])
    assert image.startswith(b"\x89PNG") and image[16:24] == (24).to_bytes(4, "big") + (32).to_bytes(4, "big")  # 3:4
    row = next(row for row in images_admin.logs(50) if row["key_name"] == name)
    assert row["surface"] == "gemini:images" and row["status"] == 200 and row["charged_micros"] > 0


def test_bad_input_is_a_clear_error_in_the_callers_shape(images_gateway: Server, images_admin: Admin) -> None:
    _, key = _key(images_admin)
    auth = {"Authorization": f"Bearer {key}"}
    answers = []
    with httpx.Client(base_url=images_gateway.url, headers=auth, timeout=30) as http:
        for body in BAD_GENERATIONS:
            r = http.post("/v1/images/generations", content=body, headers={"Content-Type": "application/json"})
            answers.append((r, "openai", body[:80]))
        for ctype, body in BAD_FORMS:
            answers.append((http.post("/v1/images/edits", content=body, headers={"Content-Type": ctype}), "openai",
                            body[:80]))
        for body in BAD_NATIVE:
            for model in ("gemini-2.5-flash-image", "nano-on-openai"):
                r = http.post(f"/v1beta/models/{model}:generateContent", content=body)
                answers.append((r, "gemini", body[:80]))
    for r, shape, body in answers:
        assert 400 <= r.status_code < 500, (r.status_code, r.text[:300], body)
        error = r.json()["error"]
        assert isinstance(error["message"], str) and error["message"], body
        assert ("status" in error) == (shape == "gemini"), (error, body)
    log = images_gateway.log.read_text()
    assert "Traceback" not in log and "internal error" not in log
