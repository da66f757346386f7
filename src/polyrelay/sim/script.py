"""What the simulator should do for one request: read from `[[sim:...]]` directives in the body
and from the API key (`sim-status-503` makes every request with that key fail with 503).

Directives (comma separated, anywhere in the request text): status=N, chunks=N (stream pieces),
delay_ms=N (between stream pieces), hang_ms=N (before answering), cut=N (stream stops after N
pieces without finishing), words=N (reply length), cached=N (cached prompt tokens), cache_write=N
(prompt tokens written to the cache; Anthropic mode only, as cache_creation_input_tokens), reasoning=N
(reasoning tokens), notool (answer in text even when tools are offered), nousage (an embeddings
answer without its usage, as some OpenAI-compatible servers send it), search (search the web when the
provider's search tool is offered: sim/search.py; search_error: the search fails, Anthropic mode),
garbage (answer 200 with a
body that is not JSON, or a stream of unreadable events then `data: [DONE]`), echo_key=N (an error
status echoes the API key: 1 its last 12 characters, 2 lowercased, 3 base64 of `Bearer <key>`, 4 base64
of `x:<key>`, 5 its middle 9 characters uppercased; a stream instead fails midway with an error event
echoing it); for video jobs (sim/videos.py): video_ms=N (create to end), video_fail (the job ends
failed), video_kb=N (content size), video_cut_kb=N (the content is cut after N KB).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import msgspec

_DIRECTIVE = re.compile(rb"\[\[sim:([a-z_=0-9,\s]+)\]\]")
_STATUS_KEY = re.compile(r"^sim-status-(\d{3})")


class Script(msgspec.Struct):
    status: int = 200
    chunks: int = 0            # 0 = one piece per word
    delay_ms: int = 0
    hang_ms: int = 0
    cut: int = -1              # -1 = never cut
    words: int = 12
    cached: int = 0
    cache_write: int = 0
    reasoning: int = 0
    notool: bool = False
    search: bool = False
    search_error: bool = False
    garbage: bool = False
    nousage: bool = False
    echo_key: int = 0
    api_key: str = ""
    video_ms: int = 600
    video_kb: int = 256
    video_fail: bool = False
    video_cut_kb: int = -1     # the content stops after this many KB, without its end (-1: never)


def read_script(body: bytes, api_key: str | None) -> Script:
    script = Script()
    for m in _DIRECTIVE.finditer(body):
        for item in m.group(1).decode().split(","):
            name, _, value = item.strip().partition("=")
            if name in ("notool", "garbage", "video_fail", "nousage", "search", "search_error"):
                setattr(script, name, True)
            elif name in Script.__struct_fields__ and value.isdigit():
                setattr(script, name, int(value))
    if api_key:
        script.api_key = api_key
        status = _STATUS_KEY.match(api_key)
        if status:
            script.status = int(status.group(1))
    return script


_WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "while", "simulated", "upstreams",
          "answer", "every", "request", "with", "deterministic", "text"]


def reply_words(n: int) -> list[str]:
    """`n` deterministic words, each followed by a space except the last."""
    return split_words(" ".join(_WORDS[i % len(_WORDS)] for i in range(max(1, n))))


def fit(text: str, budget: int, count: Callable[[str], int]) -> tuple[str, bool]:
    """The longest word prefix of `text` that `count` says has at most `budget` tokens, and whether
    it had to be cut (the simulator honours max tokens strictly, as the real APIs do)."""
    if count(text) <= budget:
        return text, False
    words = split_words(text)
    low, high = 0, len(words)   # words[:low] fits, words[:high + 1] does not
    while low < high:
        mid = (low + high + 1) // 2
        if count("".join(words[:mid])) <= budget:
            low = mid
        else:
            high = mid - 1
    return "".join(words[:low]), True


def split_words(text: str) -> list[str]:
    """`text` in pieces of one word each (spaces kept), so joining them gives `text` back."""
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + ([words[-1]] if words[-1] else [])


def echo_key(script: Script) -> str:
    """The API key as an upstream may echo it in an error (see `echo_key` above)."""
    import base64

    key = script.api_key
    return {1: f"...{key[-12:]}", 2: key.lower(), 3: base64.b64encode(f"Bearer {key}".encode()).decode(),
            4: base64.b64encode(f"x:{key}".encode()).decode(),
            5: key[len(key) // 2 - 4:len(key) // 2 + 5].upper()}.get(script.echo_key, key)
