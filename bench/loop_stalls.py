"""Why polyrelay's p99 is far above its p50: slow requests versus event-loop stalls, garbage
collections, ledger flushes and key look-ups.

    python bench/loop_stalls.py [--seconds 10] [--rate R]

Runs polyrelay's own `serve` in a child process with probes added from the outside (src is not
touched): a task that sleeps 1 ms in a loop and records every wake-up more than 5 ms late, a gc
callback timing each collection, and wrappers timing each `Ledger.flush` and each key look-up in the
database (`find_by_hash`, behind the key cache). Drives non-stream chat open-loop at a fixed rate (half
the capacity wrk measures first, unless --rate), groups the requests slower than 10 ms into bursts and
says what each burst overlapped. A diagnostic, not part of run.py.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

STALL_S = 0.005


def serve_instrumented(out: str, argv: list[str]) -> None:
    """Child: polyrelay serve, plus the probes; writes what they saw to `out` on exit."""
    import asyncio
    import atexit
    import gc

    from polyrelay.billing import ledger as ledger_mod
    from polyrelay.cli import app
    from polyrelay.relay import auth as auth_mod

    stalls: list[tuple[float, float]] = []
    gcs: list[tuple[float, float, int]] = []
    flushes: list[tuple[float, float]] = []
    lookups: list[tuple[float, float]] = []
    gc_start = [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            gcs.append((gc_start[0], time.perf_counter() - gc_start[0], info["generation"]))
    gc.callbacks.append(on_gc)

    async def watch_loop() -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            late = time.perf_counter() - t - 0.001
            if late > STALL_S:
                stalls.append((t, late))

    original_start, original_flush = ledger_mod.Ledger.start, ledger_mod.Ledger.flush

    async def start(self):  # type: ignore[no-untyped-def]
        await original_start(self)
        self._bench_watch = asyncio.create_task(watch_loop())

    async def flush(self):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        try:
            await original_flush(self)
        finally:
            flushes.append((t, time.perf_counter() - t))
    ledger_mod.Ledger.start, ledger_mod.Ledger.flush = start, flush  # type: ignore[method-assign]
    original_find = auth_mod.find_by_hash

    async def find_by_hash(*a, **k):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        try:
            return await original_find(*a, **k)
        finally:
            lookups.append((t, time.perf_counter() - t))
    auth_mod.find_by_hash = find_by_hash

    def dump() -> None:
        with open(out, "w") as f:
            json.dump({"stalls": stalls, "gcs": gcs, "flushes": flushes, "lookups": lookups}, f)
    atexit.register(dump)
    sys.argv = ["polyrelay", *argv]
    app()


def overlaps(t: float, d: float, spans: list[tuple[float, float]]) -> bool:
    return any(s < t + d and t < s + sd for s, sd in spans)


def bursts(timeline: list[tuple[float, float]], slow_s: float = 0.010) -> list[tuple[float, float, int, float]]:
    """Slow requests grouped when their [start, end] intervals touch: (start, end, count, worst latency)."""
    out: list[list[float]] = []
    for start, latency in sorted(t for t in timeline if t[1] > slow_s):
        end = start + latency
        if out and start <= out[-1][1] + 0.002:
            b = out[-1]
            b[1], b[2], b[3] = max(b[1], end), b[2] + 1, max(b[3], latency)
        else:
            out.append([start, end, 1, latency])
    return [(b[0], b[1], int(b[2]), b[3]) for b in out]


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve_instrumented(sys.argv[2], sys.argv[3:])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--rate", type=float, default=0, help="requests per second (default: half of capacity)")
    args = p.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import httpload
    import run
    import servers

    if servers.TWO_CORES:
        os.sched_setaffinity(0, {int(servers.LOAD_CORE)})
    with tempfile.TemporaryDirectory(prefix="polyrelay-stalls-") as tmp:
        workdir = Path(tmp)
        probe_out = workdir / "probes.json"
        nginx, nginx_url = servers.start_nginx(workdir)
        slow, slow_url = servers.start_slow(workdir, 10, 0.1)
        gw = None
        try:
            gw, url = servers.start_polyrelay(workdir, nginx_url, slow_url, launcher=[
                sys.executable, str(Path(__file__).resolve()), "--serve", str(probe_out)])
            env = run.Env(workdir, nginx_url, slow_url, args)
            route_url, body = run.Target("polyrelay", url, gw.pid, env).route("ns")
            capacity = run.wrk(route_url, body, 16, 3)["rps"]     # also the warm-up
            rate = args.rate or capacity / 2
            req = httpload.Request(route_url, body.read_bytes())
            result = run.run_async(httpload.open_loop(req, rate, args.seconds, httpload.expect_ok()))
        finally:
            if gw is not None:
                gw.stop(signal.SIGINT)
            slow.stop()
            nginx.stop()
        probes = json.loads(probe_out.read_text())
    # perf_counter is CLOCK_MONOTONIC on Linux: the same clock in both processes
    t0 = min(t for t, _ in result.timeline)
    t1 = max(t + d for t, d in result.timeline)
    inside = lambda spans: [x for x in spans if t0 - 1 <= x[0] <= t1]  # noqa: E731
    stalls, flushes, lookups = inside(probes["stalls"]), inside(probes["flushes"]), inside(probes["lookups"])
    gcs = inside(probes["gcs"])
    gen2 = [(t, d) for t, d, g in gcs if g == 2]
    gen1 = [(t, d) for t, d, g in gcs if g == 1]
    s = result.summary()
    print(f"open loop at {rate:.0f} req/s (capacity {capacity:.0f}) for {args.seconds:.0f} s: "
          f"p50 {s['p50_ms']:.2f} ms, "
          f"p90 {s['p90_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms, {s['errors']} errors "
          f"{s.get('first_error', '')}")
    total = sum(d for _, d in stalls)
    print(f"event-loop stalls > {STALL_S * 1000:.0f} ms: {len(stalls)}, {total * 1000:.0f} ms in all, longest "
          f"{max((d for _, d in stalls), default=0) * 1000:.1f} ms")
    for g in (0, 1, 2):
        ds = [d for _, d, gen in gcs if gen == g]
        if ds:
            print(f"gc generation {g}: {len(ds)} collections, {sum(ds) * 1000:.1f} ms in all, "
                  f"longest {max(ds) * 1000:.1f} ms")
    if flushes:
        fd = sorted(d for _, d in flushes)
        print(f"ledger flushes: {len(fd)}, median {fd[len(fd) // 2] * 1000:.1f} ms, "
              f"longest {fd[-1] * 1000:.1f} ms (awaited)")
    if lookups:
        ld = sorted(d for _, d in lookups)
        print(f"key look-ups in the database: {len(ld)} (key cache misses), longest {ld[-1] * 1000:.1f} ms")
    bs = bursts(result.timeline)
    print(f"\nbursts of requests slower than 10 ms ({sum(b[2] for b in bs)} requests, "
          f"{100 * sum(b[2] for b in bs) / max(1, len(result.timeline)):.1f}% of all):")
    for start, end, count, worst in sorted(bs, key=lambda b: -b[2])[:15]:
        d = end - start
        why = [name for name, spans in (("loop stall", stalls), ("gen-2 GC", gen2), ("gen-1 GC", gen1),
                                         ("ledger flush", flushes), ("key look-up", lookups))
               if overlaps(start, d, spans)]
        print(f"  t={start - t0:6.3f}s  {count:4d} requests, worst {worst * 1000:6.1f} ms, lasted {d * 1000:6.1f} ms; "
              f"overlapped: {', '.join(why) or 'nothing probed'}")
    lk = sorted(t - t0 for t, _ in lookups if t >= t0)
    if lk:
        print("key look-up times (s): " + " ".join(f"{t:.2f}" for t in lk[:40]))


if __name__ == "__main__":
    main()
