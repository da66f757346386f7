"""Profile polyrelay with py-spy under load; print where its time goes, as text.

    pip install py-spy
    python bench/profile.py [--scenario ns|stream|convert|image] [--connections 16] [--seconds 10]

Starts nginx and polyrelay like run.py, drives the scenario with wrk at the given concurrency, and
samples the gateway with `py-spy record --nonblocking` (the process is not paused). Writes
bench/results/profile-<scenario>.txt (the text below), profile-<scenario>.raw (collapsed stacks) and
profile-<scenario>.svg (flame graph).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import procstat
import run
import servers

_LINE = re.compile(r":\d+\)$")


def package(frame: str) -> str:
    """'send (uvicorn/protocols/http/h.py:12)' -> 'uvicorn'; stdlib asyncio and the loop -> 'asyncio'."""
    m = re.search(r"\((.*)\)$", frame)
    path = m.group(1) if m else ""
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    if "/src/polyrelay/" in path:
        return "polyrelay"
    head = path.split("/")[0] if "/" in path else path
    return head or "(native)"


def analyse(raw: Path, top: int = 30) -> str:
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    pkg: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_LINE.sub(")", f.replace("/root/.pyenv/versions/3.11.7/lib/python3.11/", ""))
                  for f in stack.split(";")]
        self_t[frames[-1]] += n
        pkg[package(frames[-1])] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return "no samples"
    pct = lambda n: f"{100 * n / total:5.1f}%"  # noqa: E731
    out = [f"{total} samples (all threads, idle excluded)", "", "Self time by package:"]
    out += [f"  {pct(n)}  {p}" for p, n in pkg.most_common(12)]
    out += ["", f"Top {top} functions by self time:"]
    out += [f"  {pct(n)}  {f}" for f, n in self_t.most_common(top)]
    out += ["", "polyrelay functions by inclusive time (self + callees):"]
    mine = [(f, n) for f, n in incl.most_common() if "polyrelay" in f and "cli.py" not in f
            and "<module>" not in f]
    out += [f"  {pct(n)}  {f}" for f, n in mine[:top]]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="ns", choices=("ns", "stream", "convert", "image"))
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--seconds", type=int, default=10, help="sampling time (wrk runs 3 s longer)")
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--source", default=None, help="profile the polyrelay of this source tree (e.g. a "
                   "checkout of an older commit) instead of this one")
    args = p.parse_args()
    spy = shutil.which("py-spy")
    if not spy:
        p.error("py-spy is not installed: pip install py-spy")
    if servers.TWO_CORES:
        os.sched_setaffinity(0, {int(servers.LOAD_CORE)})
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    name = f"profile-{args.scenario}" + (f"-c{args.connections}" if args.connections != 16 else "") + (
        f"-{Path(args.source).name}" if args.source else "")
    raw, svg = results / f"{name}.raw", results / f"{name}.svg"
    with tempfile.TemporaryDirectory(prefix="polyrelay-profile-") as tmp:
        workdir = Path(tmp)
        nginx, nginx_url = servers.start_nginx(workdir)
        slow, slow_url = servers.start_slow(workdir, 10, 0.1)
        gw = None
        try:
            gw, url = servers.start_polyrelay(workdir, nginx_url, slow_url, source=args.source)
            env = run.Env(workdir, nginx_url, slow_url, args)
            target = run.Target("polyrelay", url, gw.pid, env)
            route_url, body = target.route(args.scenario)
            run.wrk(route_url, body, args.connections, 2)   # warm-up
            load: dict[str, object] = {}

            def drive() -> None:
                load.update(target.measure(lambda: run.wrk(route_url, body, args.connections, args.seconds + 3)))
            driver = threading.Thread(target=drive)
            driver.start()
            spies = [subprocess.Popen(servers.pinned(servers.LOAD_CORE, [
                spy, "record", "--pid", str(gw.pid), "--duration", str(args.seconds), "--rate", str(args.rate),
                "--nonblocking", "--format", fmt, "-o", str(path)]), stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL) for fmt, path in (("raw", raw), ("flamegraph", svg))]
            for s in spies:
                s.wait(timeout=args.seconds + 60)
            driver.join(timeout=args.seconds + 60)
        finally:
            if gw is not None:
                gw.stop()
            slow.stop()
            nginx.stop()
    head = (f"polyrelay {run.git_commit()}, scenario {args.scenario}, wrk -c{args.connections}: "
            f"{load.get('rps', 0):.0f} req/s, {load.get('cpu_us_per_req', 0):.0f} µs CPU/request "
            f"(while sampled at {args.rate} Hz); {procstat.machine()['cpu']}")
    text = head + "\n\n" + analyse(raw)
    (results / f"{name}.txt").write_text(text + "\n")
    print(text)
    print(f"\nflame graph: {svg}\nraw stacks: {raw}", file=sys.stderr)


if __name__ == "__main__":
    main()
