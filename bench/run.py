"""One command, one machine, one run: direct-to-upstream vs polyrelay vs LiteLLM proxy.

    python bench/run.py [--only SCENARIO,...] [--repeat 3] [--targets direct,polyrelay,litellm]

Prerequisites (once): `apt-get install -y nginx wrk`, `pip install -e .` (polyrelay), and LiteLLM in
its own virtualenv: `python3 -m venv bench/.venv-litellm && bench/.venv-litellm/bin/pip install
'litellm[proxy]==1.108.7'`. Target `litellm` runs it twice: logging off and logging on.

Scenarios: ns_c1 ns_c16 ns_c64 (non-stream chat, wrk closed loop), stream_c1/c16/c64 (100-chunk SSE),
convert_c16 (OpenAI client -> Anthropic channel), responses_c16 (Responses client -> Responses
channel: the fast path), responses_convert_c16 (Responses client -> Anthropic channel), responses_stream_c16 (a
100-delta Responses stream on the fast path), responses_stored_c16 and responses_stored_stream_c16 (the same two
with `store: true`: each answer kept, docs/responses.md), image_c4 (2 MB base64 image body), open_loop
(fixed rate at half the target's capacity), slow_streams (1,000 concurrent slow streams).

Prints markdown tables and writes bench/results/<time>.json. Gateway CPU per request is utime+stime
of the gateway's process tree over the timed window divided by completed requests. The gateway is
pinned to core 1; nginx, the slow upstream and the load generators to core 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixtures
import httpload
import procstat
import report
import servers

BENCH = Path(__file__).resolve().parent
SCENARIOS = ("ns_c1", "ns_c16", "ns_c64", "stream_c1", "stream_c16", "stream_c64", "convert_c16", "image_c4",
             "open_loop", "slow_streams", "responses_c16", "responses_convert_c16", "responses_stream_c16",
             "responses_stored_c16", "responses_stored_stream_c16")
TARGETS = ("direct", "polyrelay", "polyrelay-base", "polyrelay-granian", "polyrelay-2w", "litellm", "litellm-log")
POLYRELAY_VARIANTS = {"polyrelay": "uvicorn", "polyrelay-base": "uvicorn", "polyrelay-granian": "granian",
                      "polyrelay-2w": "uvicorn-2w"}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_async(coro: Any) -> Any:
    try:
        import uvloop
        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


# ---- load generators --------------------------------------------------------------------------

def wrk(url: str, body_file: Path, connections: int, seconds: float) -> dict[str, Any]:
    """Closed loop: `connections` clients back to back for `seconds` (wrk is killed if it overruns)."""
    argv = servers.pinned(servers.LOAD_CORE, [
        "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
        "-s", str(BENCH / "wrk_post.lua"), url])
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30,
                          env={**os.environ, "BENCH_BODY": str(body_file)})
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary: {proc.stdout[-500:]} {proc.stderr[-500:]}")
    w = json.loads(line[len("WRKJSON "):])
    errors = w["status_errors"] + w["connect_errors"] + w["read_errors"] + w["write_errors"] + w["timeouts"]
    ok = w["requests"] - w["status_errors"]
    return {"requests": ok, "errors": errors, "rps": ok / (w["duration_us"] / 1e6),
            "p50_ms": w["p50_us"] / 1000, "p90_ms": w["p90_us"] / 1000, "p99_ms": w["p99_us"] / 1000,
            "elapsed_s": w["duration_us"] / 1e6}


def as_dict(result: httpload.Result) -> dict[str, Any]:
    out = result.summary()
    out["elapsed_s"] = result.elapsed
    return out


# ---- targets ----------------------------------------------------------------------------------

class Target:
    """Where each scenario's requests go for one target, and how to measure its process."""

    def __init__(self, name: str, url: str, pid: int | None, env: Env) -> None:
        self.name, self.url, self.pid, self.env = name, url, pid, env
        self.idle_rss_mb = 0.0

    def route(self, scenario: str) -> tuple[str, Path]:
        e = self.env
        if self.name == "direct":
            return {"ns": (e.nginx + "/ns/v1/chat/completions", e.bodies["ns"]),
                    "stream": (e.nginx + "/st/v1/chat/completions", e.bodies["stream"]),
                    "convert": (e.nginx + "/an/v1/messages", e.bodies["anthropic"]),
                    "image": (e.nginx + "/ns/v1/chat/completions", e.bodies["image"]),
                    "slow": (e.slow + "/slow/v1/chat/completions", e.bodies["slow"]),
                    "responses": (e.nginx + "/rs/v1/responses", e.bodies["responses"]),
                    "responses_convert": (e.nginx + "/an/v1/messages", e.bodies["anthropic"]),
                    "responses_stream": (e.nginx + "/rss/v1/responses", e.bodies["responses_stream"]),
                    "responses_stored": (e.nginx + "/rs/v1/responses", e.bodies["responses_stored"]),
                    "responses_stored_stream": (e.nginx + "/rss/v1/responses",
                                                e.bodies["responses_stored_stream"])}[scenario]
        if scenario.startswith("responses"):
            return self.url + "/v1/responses", e.bodies[scenario]
        return self.url + "/v1/chat/completions", e.bodies[scenario]

    def measure(self, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if self.pid is None:
            return run()
        procstat.reset_peak(self.pid)
        rss_before = procstat.memory_kb(self.pid)
        core = int(servers.GATEWAY_CORE)
        cpu0, busy0 = procstat.cpu_seconds(self.pid), procstat.core_busy_seconds(core)
        result = run()
        cpu = procstat.cpu_seconds(self.pid) - cpu0
        busy = procstat.core_busy_seconds(core) - busy0
        result["cpu_s"] = cpu
        # anything else that ran on the gateway's core (other processes, softirqs): the noise
        elapsed = result.get("elapsed_s") or float("nan")
        result["other_load_pct"] = max(0.0, busy - cpu) / elapsed * 100
        result["cpu_us_per_req"] = cpu / result["requests"] * 1e6 if result["requests"] else float("nan")
        result["cpu_util"] = cpu / result["elapsed_s"] if result.get("elapsed_s") else float("nan")
        result["rss_before_mb"] = rss_before / 1024
        result["peak_rss_mb"] = max(procstat.memory_kb(self.pid, "VmHWM"), result.pop("peak_sample_kb", 0)) / 1024
        return result


class Env:
    def __init__(self, workdir: Path, nginx: str, slow: str, args: argparse.Namespace) -> None:
        self.workdir, self.nginx, self.slow, self.args = workdir, nginx, slow, args
        self.bodies: dict[str, Path] = {}
        for name, body in {"ns": fixtures.chat_request(fixtures.OPENAI_MODEL),
                           "stream": fixtures.chat_request(fixtures.STREAM_MODEL, stream=True),
                           "convert": fixtures.chat_request(fixtures.CLAUDE_MODEL),
                           "anthropic": fixtures.anthropic_request(),
                           "image": fixtures.image_request(),
                           "slow": fixtures.chat_request(fixtures.SLOW_MODEL, stream=True),
                           "responses": fixtures.responses_request(fixtures.RESPONSES_MODEL),
                           "responses_convert": fixtures.responses_request(fixtures.CLAUDE_MODEL),
                           "responses_stream": fixtures.responses_request(fixtures.RESPONSES_STREAM_MODEL,
                                                                          stream=True),
                           "responses_stored": fixtures.responses_request(fixtures.RESPONSES_MODEL, store=True),
                           "responses_stored_stream": fixtures.responses_request(fixtures.RESPONSES_STREAM_MODEL,
                                                                                 stream=True, store=True)}.items():
            path = workdir / f"body-{name}.json"
            path.write_bytes(body)
            self.bodies[name] = path


# ---- scenarios --------------------------------------------------------------------------------

def closed_wrk(kind: str, connections: int) -> Callable[[Target, dict[str, Any]], dict[str, Any]]:
    def run(t: Target, _: dict[str, Any]) -> dict[str, Any]:
        url, body = t.route(kind)
        return t.measure(lambda: wrk(url, body, connections, t.env.args.duration))
    return run


def closed_streams(concurrency: int, kind: str = "stream") -> Callable[[Target, dict[str, Any]], dict[str, Any]]:
    def run(t: Target, _: dict[str, Any]) -> dict[str, Any]:
        url, body = t.route(kind)
        req = httpload.Request(url, body.read_bytes())
        check = httpload.expect_ok(min_events=fixtures.STREAM_CHUNKS)
        return t.measure(lambda: as_dict(run_async(httpload.closed_loop(
            req, concurrency, t.env.args.duration, max_requests=200_000, check=check))))
    return run


def open_loop(t: Target, rep: dict[str, Any]) -> dict[str, Any]:
    capacity = max((rep.get(s, {}).get("rps", 0.0) for s in ("ns_c16", "ns_c64")), default=0.0)
    if not capacity:   # not measured in this repeat: probe it
        capacity = closed_wrk("ns", 16)(t, rep)["rps"]
    rate = max(1.0, capacity / 2)
    seconds = t.env.args.duration
    check = httpload.expect_ok()
    url, body = Target("direct", "", None, t.env).route("ns")
    direct = as_dict(run_async(httpload.open_loop(httpload.Request(url, body.read_bytes()), rate, seconds, check)))
    url, body = t.route("ns")
    result = t.measure(lambda: as_dict(run_async(httpload.open_loop(
        httpload.Request(url, body.read_bytes()), rate, seconds, check))))
    result["direct_p50_ms"] = direct["p50_ms"]
    result["direct_p99_ms"] = direct["p99_ms"]
    result["added_p99_ms"] = result["p99_ms"] - direct["p99_ms"]
    result["capacity_rps"] = capacity
    return result


def slow_streams(t: Target, _: dict[str, Any]) -> dict[str, Any]:
    url, body = t.route("slow")
    req = httpload.Request(url, body.read_bytes())
    count = t.env.args.slow_streams
    check = httpload.expect_ok(min_events=t.env.args.slow_chunks)
    sample = (lambda: procstat.memory_kb(t.pid)) if t.pid else (lambda: 0)
    result = t.measure(lambda: as_dict(run_async(httpload.many_streams(req, count, 1.0, check, sample))))
    if t.pid:
        # growth over the idle RSS measured at start: an upper bound (the heap also keeps what
        # earlier scenarios freed), robust to the run order
        grown = (result["peak_rss_mb"] - t.idle_rss_mb) * 1024
        result["kb_per_stream"] = grown / max(1, result["max_in_flight"])
        result["cpu_us_per_chunk"] = result["cpu_us_per_req"] / (t.env.args.slow_chunks + 2)
    return result


RUNNERS: dict[str, Callable[[Target, dict[str, Any]], dict[str, Any]]] = {
    "ns_c1": closed_wrk("ns", 1), "ns_c16": closed_wrk("ns", 16), "ns_c64": closed_wrk("ns", 64),
    "stream_c1": closed_streams(1), "stream_c16": closed_streams(16), "stream_c64": closed_streams(64),
    "convert_c16": closed_wrk("convert", 16), "image_c4": closed_wrk("image", 4),
    "open_loop": open_loop, "slow_streams": slow_streams,
    "responses_c16": closed_wrk("responses", 16), "responses_convert_c16": closed_wrk("responses_convert", 16),
    "responses_stream_c16": closed_streams(16, "responses_stream"),
    "responses_stored_c16": closed_wrk("responses_stored", 16),
    "responses_stored_stream_c16": closed_streams(16, "responses_stored_stream"),
}


def run_target(t: Target, scenarios: list[str], repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if t.pid:
        time.sleep(2.0)
        out["start_rss_mb"] = procstat.memory_kb(t.pid) / 1024     # after start and one request
        url, body = t.route("ns")
        wrk(url, body, 16, 2)        # warm-up, not measured
        time.sleep(2.0)
        out["idle_rss_mb"] = t.idle_rss_mb = procstat.memory_kb(t.pid) / 1024  # idle after a warm-up
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in scenarios}
    for i in range(repeat):
        this_repeat: dict[str, Any] = {}
        for s in scenarios:
            if s == "open_loop" and t.name == "direct":
                continue     # direct is the open loop's baseline, measured inside each gateway's run
            try:
                r = RUNNERS[s](t, this_repeat)
            except Exception as exc:  # one broken scenario must not lose the whole run
                r = {"failed": f"{type(exc).__name__}: {exc}"[:500]}
            this_repeat[s] = r
            runs[s].append(r)
            log(f"  [{i + 1}/{repeat}] {t.name:<11} {s:<12} " + " ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()
                if k in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req", "peak_rss_mb", "errors", "failed",
                         "other_load_pct",
                         "added_p99_ms", "max_in_flight", "rate", "first_error")))
            time.sleep(0.5)
    for s, rs in runs.items():
        good = [r for r in rs if "failed" not in r]
        if not rs:
            continue
        out[s] = {"runs": rs, "errors_total": sum(r.get("errors", 0) for r in good)}
        if good:
            keys = [k for k, v in good[0].items() if isinstance(v, (int, float))]
            out[s]["median"] = {k: statistics.median(r[k] for r in good if isinstance(r.get(k), (int, float)))
                                for k in keys}
    if t.pid:
        out["end_rss_mb"] = procstat.memory_kb(t.pid) / 1024
    return out


def start_target(name: str, env: Env) -> tuple[servers.Process | None, Target]:
    if name == "direct":
        return None, Target("direct", env.nginx, None, env)
    if name in POLYRELAY_VARIANTS:
        source = env.args.baseline if name == "polyrelay-base" else None
        proc, url = servers.start_polyrelay(env.workdir, env.nginx, env.slow, variant=POLYRELAY_VARIANTS[name],
                                            source=source)
    else:
        proc, url = servers.start_litellm(env.workdir, env.nginx, env.slow, logging_on=name == "litellm-log")
    return proc, Target(name, url, proc.pid, env)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(BENCH.parent), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip() or "?"
    except OSError:
        return "?"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="", help=f"comma-separated scenarios out of {','.join(SCENARIOS)}")
    p.add_argument("--repeat", type=int, default=3, help="runs per scenario; the median is reported")
    p.add_argument("--targets", default="direct,polyrelay,litellm",
                   help="direct, polyrelay, litellm (= litellm-nolog and litellm-log), litellm-nolog, "
                        "litellm-log; polyrelay-base (with --baseline); "
                        "polyrelay-granian (needs `pip install granian`), polyrelay-2w (--workers 2)")
    p.add_argument("--baseline", default=None,
                   help="a source tree of an earlier polyrelay (e.g. `git worktree add ../base <commit>`): "
                        "target polyrelay-base runs it, for a before/after in one run")
    p.add_argument("--duration", type=float, default=4.0, help="seconds per timed window")
    p.add_argument("--slow-streams", type=int, default=1000, help="concurrent slow streams")
    p.add_argument("--slow-chunks", type=int, default=40, help="chunks per slow stream (one per 100 ms)")
    args = p.parse_args()
    scenarios = [s for s in SCENARIOS if not args.only or s in args.only.split(",")]
    unknown = set(args.only.split(",")) - set(SCENARIOS) - {""}
    if unknown:
        p.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
    wanted: list[str] = []
    for t in args.targets.split(","):
        names = {"litellm": ["litellm", "litellm-log"], "litellm-nolog": ["litellm"]}.get(t, [t])
        for n in names:
            if n not in TARGETS:
                p.error(f"unknown target {t!r}")
            if n.startswith("litellm") and not servers.LITELLM.exists():
                p.error(f"{servers.LITELLM} is missing: create bench/.venv-litellm first (see --help)")
            if n == "polyrelay-base" and not (args.baseline and Path(args.baseline, "src", "polyrelay").is_dir()):
                p.error("target polyrelay-base needs --baseline DIR, a polyrelay source tree (DIR/src/polyrelay)")
            if n not in wanted:
                wanted.append(n)
    if servers.TWO_CORES:
        os.sched_setaffinity(0, {int(servers.LOAD_CORE)})   # this process is a load generator too
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))

    started = time.time()
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)) + " UTC",
        "command": " ".join(["python", "bench/run.py", *sys.argv[1:]]), "machine": procstat.machine(),
        "polyrelay_commit": git_commit(), "litellm_version": servers.litellm_version(),
        "repeat": args.repeat, "duration": args.duration, "scenarios": scenarios, "results": {}}
    with tempfile.TemporaryDirectory(prefix="polyrelay-bench-") as tmp:
        workdir = Path(tmp)
        nginx, nginx_url = servers.start_nginx(workdir)
        slow, slow_url = servers.start_slow(workdir, args.slow_chunks, 0.1)
        env = Env(workdir, nginx_url, slow_url, args)
        try:
            for name in wanted:
                log(f"== {name}")
                try:
                    proc, target = start_target(name, env)
                except RuntimeError as exc:
                    log(f"  could not start {name}: {exc}")
                    result["results"][name] = {"failed": str(exc)[-1000:]}
                    continue
                try:
                    result["results"][name] = run_target(target, scenarios, args.repeat)
                finally:
                    if proc is not None:
                        if name == "litellm-log":
                            result["results"][name]["log_bytes"] = proc.log.stat().st_size
                        proc.stop()
        finally:
            slow.stop()
            nginx.stop()
    result["wall_s"] = round(time.time() - started, 1)
    out_dir = BENCH / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / time.strftime("%Y%m%d-%H%M%S.json", time.gmtime(started))
    out.write_text(json.dumps(result, indent=1))
    print(report.render(result))
    log(f"\nraw results: {out} ({result['wall_s']} s)")


if __name__ == "__main__":
    main()
