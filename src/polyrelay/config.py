"""The YAML config file: channels, keys, prices. Validated at start; a bad file names the field.

The shape is a contract (README "Config reference"): extend it, never rename.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import msgspec
import yaml

from polyrelay.routing.patterns import MAX_MODEL_CHARS, WILDCARD, pattern_problem

ChannelType = Literal["openai", "anthropic", "gemini"]
ChannelApi = Literal["chat", "responses"]   # which API an `openai` channel's upstream has
# OpenAI's models that have only the legacy /v1/completions endpoint (a channel's `completions` default)
DEFAULT_COMPLETION_MODELS = ("gpt-3.5-turbo-instruct*", "davinci-002", "babbage-002")


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file, the field and the problem."""


class ChannelConfig(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    base_url: str
    models: list[str]
    type: ChannelType = "openai"
    api_keys: list[str] = []
    model_map: dict[str, str] = {}
    priority: int = 0
    weight: int = 1
    timeout: float = 300.0          # seconds for the whole upstream response
    connect_timeout: float = 10.0   # seconds to connect
    first_byte_timeout: float = 120.0  # seconds until the upstream starts answering
    stream_idle_timeout: float = 120.0  # seconds a stream may go without an event (comments do not count)
    stream_timeout: float = 3600.0  # seconds a whole stream may last
    stream_options: bool = True     # send stream_options.include_usage (some compatible upstreams reject it)
    count_tokens: bool = True       # false: the upstream lacks the token counter its kind has (a compatible vendor)
    api: ChannelApi = "chat"        # type openai only: the upstream's API, /chat/completions or /responses
    enabled: bool = True
    proxy: str | None = None        # http://[user:pass@]host:port to reach this upstream through
    # which of `models` (names or patterns) are image models: a chat request to one is an image request
    image_models: list[str] = []
    # OpenAI kind: upstream model names (patterns allowed) its legacy /completions serves; a completion
    # for another model is converted to chat. None: DEFAULT_COMPLETION_MODELS
    completions: list[str] | None = None


class KeyConfig(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    key: str
    quota: float | None = None      # USD; None = unlimited
    models: list[str] = []          # allowlist; empty = every model
    enabled: bool = True


class PriceConfig(msgspec.Struct, forbid_unknown_fields=True):
    """USD per 1M tokens. `max_output` is the output allowance reserved when a request sets no limit."""

    input: float = 0.0
    output: float = 0.0
    cached_input: float | None = None
    cache_write: float | None = None
    max_output: int = 4096
    per_second: float | None = None   # USD per second of generated video (Sora: relay/videos.py)
    # USD per generated image: one price, or a table by "<size>", "<quality>", "<size>/<quality>"
    # and "*" (billing/images.py, README "per_image")
    per_image: float | dict[str, float] | None = None
    per_search: float = 0.0   # USD per web search the upstream ran (Anthropic, Gemini grounding, OpenAI)


class ResponsesConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Stored Responses API responses (docs/responses.md)."""

    retention_days: float = 30.0    # a stored response is purged this long after it was made
    max_stored_mb: float = 8.0      # a larger one (request + response) is served but not stored


class Config(msgspec.Struct, forbid_unknown_fields=True):
    channels: list[ChannelConfig] = []
    keys: list[KeyConfig] = []
    prices: dict[str, PriceConfig] = {}
    # a served model with no price (its own, or inherited from what it maps to): "refuse" it (403),
    # or serve it "free" (self-use gateways)
    unpriced: Literal["refuse", "free"] = "refuse"
    responses: ResponsesConfig = msgspec.field(default_factory=ResponsesConfig)


# Quotas are stored as integer micro-dollars in a 64-bit column (max ~9.2e12 USD).
MAX_QUOTA_USD = 1e12
# With requests' limits bounded (protocols/limits.py), these keep every cost inside 64 bits.
MAX_PRICE_USD = 1_000_000.0     # per 1M tokens
MAX_SEARCH_USD = 1_000.0        # per web search
MAX_OUTPUT_TOKENS = 1_000_000   # the same bound as a request's own output limit
MAX_PER_SECOND_USD = 1_000.0    # per second of video (a job is at most a few minutes: far inside 64 bits)


def quota_problem(quota: float) -> str | None:
    """What is wrong with a key quota in USD, or None if it can be stored.

    The one rule for every way a key is made: the config, `polyrelay keys create` and the admin API.
    """
    if not math.isfinite(quota):
        return "must be a finite number of USD (not NaN or infinity; omit it for unlimited)"
    if quota < 0:
        return "must not be negative"
    if quota > MAX_QUOTA_USD:
        return f"must be at most {MAX_QUOTA_USD:.0e} USD (omit it for unlimited)"
    return None


MAX_NAME_CHARS = 64     # key and channel names: they are shown in logs, tables and error messages
# MAX_MODEL_CHARS (128, the request log's column) bounds model names; routing/patterns.py holds it


def name_problem(name: str, limit: int = MAX_NAME_CHARS) -> str | None:
    """What is wrong with a key, channel or model name, or None. The one rule for the config, `polyrelay
    keys create` and the admin API: a control character in a name would forge log lines."""
    if not name or not name.strip():
        return "must not be empty"
    if len(name) > limit:
        return f"must be at most {limit} characters (got {len(name)})"
    if not name.isprintable():
        return "must be printable characters only (no control characters or line breaks)"
    return None


def allowlist_problem(models: list[str]) -> str | None:
    """What is wrong with a key's model allowlist (exact names and patterns), or None: the one rule
    for the config, `polyrelay keys create` and the admin API."""
    for model in models:
        problem = name_problem(model, MAX_MODEL_CHARS) or pattern_problem(model)
        if problem:
            return f"{model!r} {problem}" if problem.startswith("must") else problem
    return None


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(value: object, path: str, file: str) -> object:
    """Expand ${VAR} in every string; a missing variable is a config error naming the field."""
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in os.environ:
                raise ConfigError(f"{file}: {path}: environment variable {name} is not set")
            return os.environ[name]
        return _ENV_REF.sub(sub, value)
    if isinstance(value, list):
        return [_expand_env(v, f"{path}[{i}]", file) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{path}.{k}" if path else str(k), file) for k, v in value.items()}
    return value


def parse_config(text: str, file: str = "<config>") -> Config:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{file}: {_yaml_problem(e, text)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: the top level must be a mapping with channels, keys, prices")
    expanded = _expand_env(raw, "", file)   # a mapping stays a mapping
    try:
        config = msgspec.convert(expanded, Config)
    except msgspec.ValidationError as e:
        # msgspec says e.g. "Expected `int`, got `str` - at `$.channels[0].priority`"
        message = str(e)
        if "`$.prices[...]" in message and isinstance(expanded, dict):  # a dict key is not named: find the model
            message = _price_entry_error(expanded.get("prices")) or message
        raise ConfigError(f"{file}: {_field_first(message)}") from None
    _check_semantics(config, file)
    return config


def _yaml_problem(error: yaml.YAMLError, text: str) -> str:
    """One line instead of PyYAML's dump; `[${VAR}]` (the natural way to write a reference, and
    invalid YAML inside [ ] or { }) gets the quoted form that works."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    if mark is None:
        return f"not valid YAML: {problem}"
    where = f"line {mark.line + 1}, column {mark.column + 1}"
    lines = text.splitlines()
    ref = _ENV_REF.search(lines[mark.line]) if mark.line < len(lines) else None
    if ref:
        return (f"{where}: not valid YAML: {problem}: inside [ ] or {{ }} write the reference quoted, "
                f'"{ref.group(0)}" (e.g. api_keys: ["{ref.group(0)}"])')
    star = _BARE_STAR.search(lines[mark.line]) if mark.line < len(lines) else None
    if star:   # YAML reads a leading * as an alias
        return (f"{where}: not valid YAML: {problem}: a model pattern that starts with '*' must be quoted "
                f'(e.g. "{star.group(1)}")')
    return f"{where}: not valid YAML: {problem}"


_BARE_STAR = re.compile(r"(?:^|[\[{,:]|-\s)\s*(\*[^\s,\]}:]*)")


def _price_entry_error(prices: object) -> str | None:
    """Validate each price entry alone, so the error names its model (`prices.m`), not `prices[...]`."""
    if not isinstance(prices, dict):
        return None
    for model, entry in prices.items():
        try:
            msgspec.convert(entry, PriceConfig)
        except msgspec.ValidationError as e:
            what, sep, where = str(e).partition(" - at `$")
            return f"{what} - at `$.prices.{model}{where.rstrip('`') if sep else ''}`"
    return None


_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `([^`]*)`$")


def _field_first(message: str) -> str:
    what, sep, where = message.partition(" - at `$")
    if not sep:
        # msgspec gives no path for an unknown field of the top level
        unknown = _UNKNOWN_FIELD.match(what)
        return f"{unknown.group(1)}: {what}" if unknown else message
    field = where.rstrip("`").lstrip(".")
    unknown = _UNKNOWN_FIELD.match(what)
    if unknown:  # name the unknown field itself: `prices.m.outptu`, not just `prices.m`
        field = f"{field}.{unknown.group(1)}" if field else unknown.group(1)
    return f"{field or '(top level)'}: {what}"


def _has_control_characters(text: str) -> bool:
    """Whitespace or unprintable characters: in a URL or a header value they would inject headers."""
    return any(c.isspace() or not c.isprintable() for c in text)


def _url_problem(url: str | None) -> str | None:
    """What is wrong with the host or port of an upstream or proxy URL, if anything."""
    if url is None:
        return None
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return "has a port that is not a number from 0 to 65535"
    if not parts.hostname or port == 0:
        return "needs a host (and a port from 1 to 65535, if any)"
    try:
        parts.hostname.encode("idna")
    except UnicodeError:
        return f"has a host name that cannot be looked up ({parts.hostname!r})"
    return None


def _check_semantics(config: Config, file: str) -> None:
    def fail(field: str, problem: str) -> None:
        raise ConfigError(f"{file}: {field}: {problem}")

    names: set[str] = set()
    for i, ch in enumerate(config.channels):
        where = f"channels[{i}]"
        problem = name_problem(ch.name)
        if problem:
            fail(f"{where}.name", problem)
        for j, model in enumerate([*ch.models, *ch.model_map.values()]):
            problem = name_problem(model, MAX_MODEL_CHARS)
            if problem:
                fail(f"{where}.models[{j}]" if j < len(ch.models) else f"{where}.model_map", problem)
        for j, model in enumerate(ch.models):
            problem = pattern_problem(model)
            if problem:
                fail(f"{where}.models[{j}]", problem)
        for j, model in enumerate(ch.image_models):
            problem = name_problem(model, MAX_MODEL_CHARS) or pattern_problem(model)
            if problem:
                fail(f"{where}.image_models[{j}]", problem)
        for public, upstream in ch.model_map.items():
            if WILDCARD in public:
                fail(f"{where}.model_map.{public}", "a pattern cannot be mapped (the names it matches go upstream "
                     "unchanged); map exact names, listed in models as well")
            if WILDCARD in upstream:
                fail(f"{where}.model_map.{public}", f"maps to {upstream!r}: one upstream name, '*' is no wildcard here")
        for j, model in enumerate(ch.completions or []):
            problem = name_problem(model, MAX_MODEL_CHARS) or pattern_problem(model)
            if problem:
                fail(f"{where}.completions[{j}]", problem)
        if ch.completions is not None and ch.type != "openai":
            fail(f"{where}.completions", "only an openai channel has a /completions endpoint (the other kinds "
                 "serve legacy completions by conversion)")
        if ch.name in names:
            fail(f"{where}.name", f"duplicate channel name {ch.name!r}")
        names.add(ch.name)
        if not re.match(r"^https?://", ch.base_url):
            fail(f"{where}.base_url", f"must start with http:// or https:// (got {ch.base_url!r})")
        if _has_control_characters(ch.base_url):
            fail(f"{where}.base_url", "contains whitespace or control characters")
        if ch.proxy is not None and (not re.match(r"^http://[^/\s]+(:\d+)?/?$", ch.proxy)):
            fail(f"{where}.proxy", "must be an http:// proxy URL like http://user:pass@host:3128")
        for field in ("base_url", "proxy"):
            problem = _url_problem(getattr(ch, field))
            if problem:
                fail(f"{where}.{field}", problem)
        if not ch.models:
            fail(f"{where}.models", "must list at least one model")
        if ch.api != "chat" and ch.type != "openai":
            fail(f"{where}.api", f"applies to type openai channels only (this one is {ch.type})")
        if ch.weight < 1:
            fail(f"{where}.weight", "must be at least 1")
        for public in ch.model_map:
            if public not in ch.models:
                fail(f"{where}.model_map.{public}", "maps a model that is not in this channel's models")
        for j, api_key in enumerate(ch.api_keys):
            if not api_key:
                fail(f"{where}.api_keys[{j}]", "is empty")
            if _has_control_characters(api_key):
                fail(f"{where}.api_keys[{j}]", "contains whitespace or control characters (a stray newline?)")
        for field in ("timeout", "connect_timeout", "first_byte_timeout", "stream_idle_timeout", "stream_timeout"):
            if not math.isfinite(getattr(ch, field)):
                fail(f"{where}.{field}", "must be a finite number (not .inf or .nan)")
            if getattr(ch, field) <= 0:
                fail(f"{where}.{field}", "must be positive")
    key_names: set[str] = set()
    key_values: set[str] = set()
    for i, key in enumerate(config.keys):
        where = f"keys[{i}]"
        problem = name_problem(key.name)
        if problem:
            fail(f"{where}.name", problem)
        if key.name in key_names:
            fail(f"{where}.name", f"duplicate key name {key.name!r}")
        if key.key in key_values:
            fail(f"{where}.key", "the same key value is used twice")
        if len(key.key) < 8:
            fail(f"{where}.key", "must be at least 8 characters")
        problem = None if key.quota is None else quota_problem(key.quota)
        if problem:
            fail(f"{where}.quota", problem)
        problem = allowlist_problem(key.models)
        if problem:
            fail(f"{where}.models", problem)
        key_names.add(key.name)
        key_values.add(key.key)
    for field in ("retention_days", "max_stored_mb"):
        value = getattr(config.responses, field)
        if not math.isfinite(value) or value <= 0:
            fail(f"responses.{field}", "must be a positive finite number")
    for model, price in config.prices.items():
        problem = name_problem(model, MAX_MODEL_CHARS) or pattern_problem(model)
        if problem:
            fail(f"prices.{model!r}", problem)
        for field in ("input", "output", "cached_input", "cache_write"):
            value = getattr(price, field)
            if value is not None and not math.isfinite(value):
                fail(f"prices.{model}.{field}", "must be a finite number (not .inf or .nan)")
            if value is not None and value < 0:
                fail(f"prices.{model}.{field}", "must not be negative")
            if value is not None and value > MAX_PRICE_USD:
                fail(f"prices.{model}.{field}", f"must be at most {MAX_PRICE_USD:,.0f} USD per 1M tokens")
        per_second = price.per_second
        if per_second is not None and not (math.isfinite(per_second) and 0 <= per_second <= MAX_PER_SECOND_USD):
            fail(f"prices.{model}.per_second", f"must be a number from 0 to {MAX_PER_SECOND_USD:,.0f} USD per second")
        if not 1 <= price.max_output <= MAX_OUTPUT_TOKENS:
            fail(f"prices.{model}.max_output", f"must be an integer from 1 to {MAX_OUTPUT_TOKENS:,}")
        problem = per_image_problem(price.per_image)
        if problem:
            fail(f"prices.{model}.per_image", problem)
        if not (math.isfinite(price.per_search) and 0 <= price.per_search <= MAX_SEARCH_USD):
            fail(f"prices.{model}.per_search", f"must be a number from 0 to {MAX_SEARCH_USD:,.0f} USD per search")


MAX_IMAGE_PRICE_USD = 10_000.0   # per image


def per_image_problem(per_image: float | dict[str, float] | None) -> str | None:
    """What is wrong with a `per_image` price, or None."""
    if per_image is None:
        return None
    table = per_image if isinstance(per_image, dict) else {"*": per_image}
    if not table:
        return "must be a number or a table with at least one entry"
    for name, usd in table.items():
        where = "" if not isinstance(per_image, dict) else f" ({name!r})"
        if not name or len(name) > 64 or name.count("/") > 1:
            return f"entry {name!r} must be '<size>', '<quality>', '<size>/<quality>' or '*'"
        if not math.isfinite(usd) or usd < 0 or usd > MAX_IMAGE_PRICE_USD:
            return f"must be a finite number of USD from 0 to {MAX_IMAGE_PRICE_USD:,.0f} per image{where}"
    return None


def load_config(path: str | Path) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror}") from None
    return parse_config(text, str(p))
