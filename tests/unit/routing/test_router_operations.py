"""`Router.candidates(model, operation)` offers only the channels whose capabilities list the operation."""

from __future__ import annotations

from polyrelay.channels import build_channel
from polyrelay.config import ChannelConfig, ChannelType
from polyrelay.routing.router import Router


def channel(name: str, kind: ChannelType, priority: int = 0, count_tokens: bool = True):  # type: ignore[no-untyped-def]
    return build_channel(ChannelConfig(name=name, base_url="http://x", models=["m"], type=kind,
                                       priority=priority, count_tokens=count_tokens))


def test_count_tokens_is_offered_only_to_channels_with_a_counter() -> None:
    router = Router([channel("openai", "openai", 9), channel("no-counter", "anthropic", 5, count_tokens=False),
                     channel("anthropic", "anthropic", 1), channel("gemini", "gemini", 0)])
    assert [c.name for c in router.candidates("m", "generate")] == ["openai", "no-counter", "anthropic", "gemini"]
    assert [c.name for c in router.candidates("m", "count_tokens")] == ["anthropic", "gemini"]
    assert router.serves("m") and router.models() == ["m"]


def test_a_model_only_uncountable_channels_serve_has_no_count_candidates_but_is_served() -> None:
    router = Router([channel("openai", "openai")])
    assert router.candidates("m", "count_tokens") == [] and router.serves("m")


def test_the_flag_only_removes_a_counter_the_kind_has() -> None:
    assert not channel("o", "openai", count_tokens=True).serves("count_tokens")
    assert channel("g", "gemini").serves("count_tokens")
    assert not channel("g", "gemini", count_tokens=False).serves("count_tokens")
    assert all(channel(k, k, count_tokens=False).serves("generate") for k in ("openai", "anthropic", "gemini"))
