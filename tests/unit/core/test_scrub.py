"""The scrubber (scrub.py) finds every piece of every secret in any shape, and stays cheap on large
error bodies (over HTTP: tests/e2e/test_secrets_and_logs.py)."""

from __future__ import annotations

import base64
import time

from secret_leaks import leaks

UPSTREAM_KEY = "sk-proj-Up5treamSecretKey-0123456789abcdefXYZ"


def _leaks(text: str, secret: str = UPSTREAM_KEY) -> list[str]:
    return leaks(text, secret)


def test_scrubber_finds_every_piece_of_every_secret_and_leaves_other_text() -> None:
    from polyrelay.scrub import Scrubber, proxy_secrets

    password = "pr0xy-Passw0rd!"
    scrub = Scrubber([UPSTREAM_KEY, "short", *proxy_secrets(f"http://user:{password}@proxy.example:3128")]).scrub
    text = "keep this text: the quick brown fox 9876543210 aGVsbG8gd29ybGQ= İstanbul"
    assert scrub(text) == text
    for shape in (UPSTREAM_KEY, UPSTREAM_KEY.upper(), UPSTREAM_KEY[9:17], UPSTREAM_KEY[-20:].swapcase(),
                  base64.b64encode(f"Bearer {UPSTREAM_KEY}".encode()).decode(),
                  base64.urlsafe_b64encode(f"x:{UPSTREAM_KEY}".encode()).decode(),
                  password, base64.b64encode(f"user:{password}".encode()).decode(), "short"):
        out = scrub(f"İ before {shape} after")
        assert out.startswith("İ before ") and out.endswith(" after") and "***" in out, (shape, out)
        assert not _leaks(out), (shape, out)
        assert password.lower()[:8] not in out.lower()


def test_scrubbing_a_64_kb_error_body_is_cheap() -> None:
    import os
    import random
    import string

    from polyrelay.scrub import Scrubber

    rng = random.Random(7)
    keys = ["sk-proj-" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(48))
            for _ in range(10)]
    scrubber = Scrubber(keys)
    prose = ("The upstream could not parse field 0123456789 of the request " * 1100)[:64 * 1024]
    noise = base64.b64encode(os.urandom(48 * 1024)).decode()
    leaky = prose[:30000] + keys[3][-12:] + prose[30000:]
    for body in (prose, noise, leaky):
        best = min(_timed(scrubber.scrub, body) for _ in range(5))
        assert best < 0.05, f"{best * 1000:.1f} ms for {len(body)} characters"
    assert keys[3][-12:] not in scrubber.scrub(leaky)


def _timed(fn, arg) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    fn(arg)
    return time.perf_counter() - started
