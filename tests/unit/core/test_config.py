"""The configuration file: every bound and reference is checked where the file is read, and a
refusal names the field."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.parametrize("text,field", [
    ("prices: {m: {input: 1, max_output: -100}}", "prices.m.max_output"),   # a negative reservation
    ("prices: {m: {input: 1, max_output: 0}}", "prices.m.max_output"),
    ("prices: {m: {input: 1, max_output: 9223372036854775808}}", "prices.m.max_output"),
    ("prices: {m: {input: 1.0e+15}}", "prices.m.input"),                     # costs past 64 bits
    ("prices: {m: {input: 1, per_search: -0.01}}", "prices.m.per_search"),  # a search must not credit
    ("prices: {m: {input: 1, per_search: .inf}}", "prices.m.per_search"),
    ("prices: {m: {input: 1, per_search: 1.0e+6}}", "prices.m.per_search"),
    ("unpriced: gratis", "unpriced"),
])
def test_config_bounds_what_feeds_a_reservation(text: str, field: str) -> None:
    from polyrelay.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as caught:
        parse_config(text, "c.yaml")
    assert field in str(caught.value)
    assert parse_config("unpriced: free").unpriced == "free" and parse_config("").unpriced == "refuse"


@pytest.mark.parametrize("text,problem", [
    ("completions: [gpt-3.5-turbo-instruct]", "only an openai channel"),   # an anthropic channel below
    ("completions: ['gpt-[35]']", "only '*' is a wildcard"),
    ("completions: ['']", "must not be empty"),
])
def test_a_channels_completions_setting_is_checked(text: str, problem: str) -> None:
    from polyrelay.config import ConfigError, parse_config

    kind = "anthropic" if "only an openai" in problem else "openai"
    with pytest.raises(ConfigError) as caught:
        parse_config(f"channels: [{{name: c, type: {kind}, base_url: 'http://x', models: [m], {text}}}]", "c.yaml")
    assert "channels[0].completions" in str(caught.value) and problem in str(caught.value)
    ok = parse_config("channels: [{name: c, base_url: 'http://x', models: [m], completions: ['*-instruct', m]}]")
    assert ok.channels[0].completions == ["*-instruct", "m"] and parse_config("").channels == []


@pytest.mark.parametrize("field", ["stream_idle_timeout", "stream_timeout"])
@pytest.mark.parametrize("value", ["0", "-1", ".inf", ".nan"])
def test_stream_limits_are_validated_like_the_other_timeouts(field: str, value: str) -> None:
    from polyrelay.config import ConfigError, parse_config

    defaults = parse_config("channels: [{name: a, base_url: 'http://x', models: [m]}]").channels[0]
    assert (defaults.stream_idle_timeout, defaults.stream_timeout) == (120.0, 3600.0)
    with pytest.raises(ConfigError, match=f"channels\\[0\\].{field}"):
        parse_config(f"channels: [{{name: a, base_url: 'http://x', models: [m], {field}: {value}}}]")


def test_env_references_in_config_expand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from polyrelay.config import parse_config

    monkeypatch.setenv("POLYRELAY_TEST_KEY", "sk-from-env")
    config = parse_config("channels: [{name: a, base_url: 'http://x/v1', models: [m], "
                          "api_keys: ['${POLYRELAY_TEST_KEY}']}]")
    assert config.channels[0].api_keys == ["sk-from-env"]
