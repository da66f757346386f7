"""Model patterns in the config are checked at load: only `*` is a wildcard (README "Config
reference"); a pattern cannot be mapped by model_map, nor be an upstream name."""

from __future__ import annotations

import pytest

from polyrelay.config import ConfigError, allowlist_problem, parse_config


def _config(models: str = '["gpt-4-gizmo-*"]', model_map: str = "{}", prices: str = "{}",
            key_models: str = "[]") -> str:
    return f"""
channels:
  - name: gizmos
    base_url: http://127.0.0.1:1/v1
    models: {models}
    model_map: {model_map}
keys:
  - {{name: alice, key: sk-alice-0001, models: {key_models}}}
prices: {prices}
"""


def test_patterns_load_everywhere_a_model_is_named() -> None:
    config = parse_config(_config(models='["gpt-4-gizmo-*", "*", gpt-4-gizmo-fast]',
                                  model_map="{gpt-4-gizmo-fast: gpt-4o-mini}",
                                  prices='{"gpt-4-gizmo-*": {input: 1, output: 2}, "*": {input: 9, output: 9}}',
                                  key_models='["gpt-4-*", gpt-4o]'))
    assert config.channels[0].models == ["gpt-4-gizmo-*", "*", "gpt-4-gizmo-fast"]
    assert set(config.prices) == {"gpt-4-gizmo-*", "*"} and config.keys[0].models == ["gpt-4-*", "gpt-4o"]


@pytest.mark.parametrize("fields, message", [
    ({"models": '["gpt-4?"]'},
     "channels[0].models[0]: 'gpt-4?': '?' cannot be in a model name; only '*' is a wildcard"),
    ({"models": '[gpt-4o, "claude-[34]*"]'}, "channels[0].models[1]: 'claude-[34]*': '[' and ']' cannot be"),
    ({"models": '["gpt-**"]'}, "channels[0].models[0]: 'gpt-**': write one '*' instead of '**'"),
    ({"models": '["gpt-4-gizmo-*"]', "model_map": '{"gpt-4-gizmo-*": gpt-4o}'},
     "channels[0].model_map.gpt-4-gizmo-*: a pattern cannot be mapped"),
    ({"models": "[gpt-4o]", "model_map": '{gpt-4o: "gpt-4o-*"}'},
     "channels[0].model_map.gpt-4o: maps to 'gpt-4o-*': one upstream name, '*' is no wildcard here"),
    ({"prices": '{"gpt-4?": {input: 1}}'}, "prices.'gpt-4?': 'gpt-4?': '?' cannot be in a model name"),
    ({"key_models": '["gpt-[4]*"]'}, "keys[0].models: 'gpt-[4]*': '[' and ']' cannot be in a model name"),
    ({"key_models": '[""]'}, "keys[0].models: '' must not be empty"),
])
def test_other_glob_syntax_fails_naming_the_field(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_config(**fields), "c.yaml")
    assert str(caught.value).startswith(f"c.yaml: {message}"), str(caught.value)


def test_the_allowlist_rule_is_one_function() -> None:
    assert allowlist_problem(["gpt-4o", "claude-*"]) is None
    assert "only '*' is a wildcard" in (allowlist_problem(["gpt-4o", "o?"]) or "")
    assert "at most 128 characters" in (allowlist_problem(["x" * 129]) or "")


@pytest.mark.parametrize("text, quoted", [
    ("channels: [{name: a, base_url: 'http://127.0.0.1:1/v1', models: [*-mini]}]", '"*-mini"'),
    ("prices:\n  *: {input: 1}\n", '"*"'),
    ("channels:\n  - name: a\n    base_url: http://127.0.0.1:1/v1\n    models:\n      - *-mini\n", '"*-mini"'),
])
def test_a_bare_leading_star_says_to_quote_the_pattern(text: str, quoted: str) -> None:
    """YAML reads `*-mini` as an alias: the error says what to write instead."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "c.yaml")
    assert f"a model pattern that starts with '*' must be quoted (e.g. {quoted})" in str(caught.value)
    assert parse_config(text.replace("*-mini", '"*-mini"').replace("  *:", '  "*":'))
