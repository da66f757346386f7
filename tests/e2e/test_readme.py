"""The README and `polyrelay demo` run as printed: every Python and curl example of the README and
every snippet the demo prints, against a real demo (a subprocess) on free ports.

The README's examples name the demo's default ports; they run with 127.0.0.1:8080 replaced by the
free port the test's demo listens on (the demo prints its snippets with its own ports, unchanged).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers import Server, free_port

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def fenced(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(README) if lang == language]


def curl_examples() -> list[str]:
    return [body for body in fenced("bash") if body.startswith("curl ")]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("readme-demo")
    port, sim_port = free_port(), free_port()
    server = Server(["demo", "--port", str(port), "--sim-port", str(sim_port)], port, workdir).start()
    deadline = time.monotonic() + 20
    while "Ctrl-C stops the demo." not in server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shell_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The snippets say `python3`: here that is this interpreter (with the SDKs), whatever PATH says."""
    shims = tmp_path_factory.mktemp("shims")
    shim = shims / "python3"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    shim.chmod(0o755)
    return {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}"}


def run_shell(command: str, env: dict[str, str]) -> str:
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, f"{command}\n--- exit {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.strip(), f"{command}\n--- printed nothing; stderr:\n{done.stderr}"
    assert '"error"' not in done.stdout, f"{command}\n--- answered an error:\n{done.stdout}"
    return done.stdout


def printed_snippets(log: str) -> list[str]:
    """Split what the demo printed between "Try it" and "Ctrl-C" into shell commands; every line that
    is not blank or a comment must belong to one (an unrecognised snippet fails here, not silently)."""
    block = log.split("Try it", 1)[1].split("\n", 1)[1].split("Ctrl-C stops the demo.", 1)[0]
    commands: list[str] = []
    lines = iter(block.splitlines())
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("python3 - <<'EOF'"):
            body = [line]
            for more in lines:
                body.append(more)
                if more == "EOF":
                    break
            commands.append("\n".join(body) + "\n")
        elif line.startswith("curl "):
            body = [line]
            while body[-1].endswith("\\"):
                body.append(next(lines))
            commands.append("\n".join(body))
        else:
            raise AssertionError(f"the demo printed a line that is no snippet: {line!r}")
    return commands


@pytest.mark.slow
def test_every_snippet_the_demo_prints_runs_as_printed(demo: Server, shell_env: dict[str, str]) -> None:
    log = demo.log.read_text()
    commands = printed_snippets(log)
    assert sum(c.startswith("curl ") for c in commands) >= 2
    assert sum(c.startswith("python3 ") for c in commands) == 3   # the OpenAI, Anthropic and Gemini SDKs
    for command in commands:
        assert f"127.0.0.1:{demo.port}" in command
        out = run_shell(command, shell_env)
        if "billing/subscription" in command:
            assert '"hard_limit_usd":5.0' in out.replace(" ", ""), out


@pytest.mark.slow
def test_every_readme_python_example_runs_against_the_demo(demo: Server) -> None:
    examples = fenced("python")
    assert len(examples) >= 3
    for code in examples:
        assert "127.0.0.1:8080" in code
        done = subprocess.run([sys.executable, "-c", code.replace("127.0.0.1:8080", f"127.0.0.1:{demo.port}")],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{code}\n--- {done.stderr}"
        assert done.stdout.strip(), code


def test_every_readme_curl_example_runs_against_the_demo(demo: Server, shell_env: dict[str, str]) -> None:
    examples = curl_examples()
    assert examples
    for command in examples:
        out = run_shell(command.replace("127.0.0.1:8080", f"127.0.0.1:{demo.port}"), shell_env)
        assert '"choices"' in out, out


def test_the_quick_start_installs_what_the_demo_snippets_import() -> None:
    install, test = [body.strip() for body in fenced("bash")[:2]]
    assert install.endswith("&& polyrelay demo") and "'.[sdk]'" in install
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    sdk = {re.split(r"[<>=;\[ ]", req, maxsplit=1)[0] for req in extras["sdk"]}
    assert {"openai", "anthropic", "google-genai"} <= sdk
    # .ci/run runs the README's test command as written
    assert test in (ROOT / ".ci" / "run").read_text().splitlines()


def test_the_readme_config_reference_is_a_valid_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from polyrelay.config import parse_config

    yaml_blocks = fenced("yaml")
    assert yaml_blocks
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    config = parse_config(yaml_blocks[0], "README config reference")
    assert config.channels[0].api_keys[0] == "sk-from-the-environment"
    served = {m for ch in config.channels for m in ch.models}
    assert served <= set(config.prices), "every model of the reference has a price"


EXAMPLE_ENV = {"OPENAI_API_KEY": "sk-test-openai", "ANTHROPIC_API_KEY": "sk-ant-test", "GEMINI_API_KEY": "AIza-test",
               "TEAM_KEY": "sk-team-test-0001", "CI_KEY": "sk-ci-test-0001"}


def test_the_example_config_loads_with_real_upstreams_and_a_price_for_every_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from polyrelay.channels import build_channel
    from polyrelay.config import load_config

    example = ROOT / "examples" / "polyrelay.yaml"
    assert "examples/polyrelay.yaml" in README
    for name, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(name, value)
    config = load_config(example)
    urls = {ch.type: build_channel(ch).url("generate", ch.models[0], False) for ch in config.channels}
    assert urls == {"openai": "https://api.openai.com/v1/chat/completions",
                    "anthropic": "https://api.anthropic.com/v1/messages",
                    "gemini": f"https://generativelanguage.googleapis.com/v1beta/models/{config.channels[2].models[0]}"
                              ":generateContent"}
    # every ${...} form the file shows expands: quoted in [ ], a block item, a plain value, quoted value
    assert [ch.api_keys for ch in config.channels] == [["sk-test-openai"], ["sk-ant-test"], ["AIza-test"]]
    assert [k.key for k in config.keys] == ["sk-team-test-0001", "sk-ci-test-0001"]
    served = {m for ch in config.channels for m in ch.models}
    assert served == set(config.prices), "a price for every served model, and no price for nothing"

    # and the gateway takes it: schema and keys in a new database
    env = {**os.environ, **EXAMPLE_ENV}
    done = subprocess.run([sys.executable, "-m", "polyrelay.cli", "migrate", "--config", str(example),
                           "--database", f"sqlite:///{tmp_path}/example.db"],
                          capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listed = subprocess.run([sys.executable, "-m", "polyrelay.cli", "keys", "list", "--json",
                             "--database", f"sqlite:///{tmp_path}/example.db"],
                            capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert [k["name"] for k in json.loads(listed.stdout)] == ["team", "ci"]
    del env["TEAM_KEY"]
    done = subprocess.run([sys.executable, "-m", "polyrelay.cli", "migrate", "--config", str(example)],
                          capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert done.returncode == 2 and "keys[0].key: environment variable TEAM_KEY is not set" in done.stderr
