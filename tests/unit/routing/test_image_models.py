"""Which models are image models (a channel's `image_models`), and which Gemini requests ask for
images: both read on the request path, so both are one look-up for an ordinary request."""

from __future__ import annotations

import msgspec

from polyrelay.catalog import Catalog
from polyrelay.config import parse_config
from polyrelay.protocols.gemini.fastpath import peek_request
from polyrelay.protocols.images import wants_image

CONFIG = """
channels:
  - {name: a, base_url: "http://x/v1", models: [gpt-4o-mini, gpt-image-1, "gpt-image-*"], image_models: ["gpt-image-*"]}
  - {name: g, type: gemini, base_url: "http://g", models: [nano], image_models: [nano]}
  - {name: disabled, base_url: "http://x/v1", models: [hidden-image], image_models: [hidden-image], enabled: false}
prices: {"*": {input: 1, output: 1}}
"""


def test_exact_names_patterns_and_disabled_channels() -> None:
    router = Catalog(parse_config(CONFIG)).now.router
    assert router.has_image_models
    assert router.is_image_model("gpt-image-1")          # listed exactly, marked by a pattern
    assert router.is_image_model("gpt-image-2")          # served and marked by the pattern
    assert router.is_image_model("nano")
    assert not router.is_image_model("gpt-4o-mini")
    assert not router.is_image_model("hidden-image")     # its channel is disabled
    plain = Catalog(parse_config('channels: [{name: a, base_url: "http://x/v1", models: [m]}]\n'
                                 'prices: {m: {input: 1, output: 1}}\n')).now.router
    assert not plain.has_image_models


def _top(body: object) -> dict[str, msgspec.Raw]:
    return peek_request(msgspec.json.encode(body), "m", False).top


def test_wants_image_reads_only_the_generation_config() -> None:
    text = {"contents": [{"parts": [{"text": "IMAGE please"}]}]}
    assert not wants_image(_top(text))
    assert wants_image(_top({**text, "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]}}))
    assert wants_image(_top({**text, "generation_config": {"response_modalities": ["IMAGE"]}}))
    assert not wants_image(_top({**text, "generationConfig": {"responseModalities": ["TEXT"], "x": "IMAGE"}}))
