from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from servers import Admin, Server, free_port, start_gateway, start_simulator

_names = itertools.count()


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("polyrelay")


@pytest.fixture(scope="session")
def sim(workdir: Path) -> Iterator[Server]:
    server = start_simulator(workdir)
    yield server
    server.stop()


def main_config(sim_url: str) -> str:
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there: connect error
    return f"""
channels:
  - name: primary
    type: openai
    base_url: {sim_url}/v1
    api_keys: [sk-up-1, sk-up-2]
    models: [gpt-4o-mini, gpt-4o, failover-model, free-model, race-model, deepseek-sim-reasoner]
    model_map: {{gpt-4o: gpt-4o-2024-11-20}}
  - name: broken-503
    base_url: {sim_url}/v1
    api_keys: [sim-status-503]
    models: [failover-model, doomed-model]
    priority: 10
  - name: limited-429
    base_url: {sim_url}/v1
    api_keys: [sim-status-429]
    models: [failover-model]
    priority: 9
  - name: unreachable
    base_url: {dead}
    api_keys: [sk-up-dead]
    models: [failover-model, doomed-model]
    priority: 8
  - name: bad-credentials
    base_url: {sim_url}/v1
    api_keys: [sim-status-401-sk-secret-upstream-key]
    models: [failover-model, leaky-model]
    priority: 7
  - name: slowpoke
    base_url: {sim_url}/v1
    api_keys: [sk-up-slow]
    models: [slow-model]
    first_byte_timeout: 0.3
  - name: claude
    type: anthropic
    base_url: {sim_url}
    api_keys: [sk-ant-upstream]
    models: [claude-sim-sonnet, claude-sim-sonnet-thinking]
  - name: gemini
    type: gemini
    base_url: {sim_url}
    api_keys: [gemini-upstream-key]
    models: [gemini-2.5-flash, gemini-3-pro-preview]
keys:
  - name: alice
    key: sk-alice-0001
  - name: restricted
    key: sk-restricted-0001
    models: [gpt-4o-mini]
  - name: switched-off
    key: sk-disabled-0001
    enabled: false
prices:
  gpt-4o-mini: {{input: 0.15, output: 0.60, cached_input: 0.075}}
  gpt-4o: {{input: 2.50, output: 10.00, cached_input: 1.25}}
  failover-model: {{input: 1.0, output: 2.0}}
  doomed-model: {{input: 1.0, output: 2.0}}
  race-model: {{input: 3.0, output: 15.0, max_output: 64}}
  claude-sim-sonnet: {{input: 3.0, output: 15.0, cached_input: 0.30, cache_write: 3.75}}
  claude-sim-sonnet-thinking: {{input: 3.0, output: 15.0}}
  gemini-2.5-flash: {{input: 0.30, output: 2.50, cached_input: 0.03}}
  gemini-3-pro-preview: {{input: 2.0, output: 12.0}}
"""


@pytest.fixture(scope="session")
def gateway(sim: Server, workdir: Path) -> Iterator[Server]:
    server = start_gateway(main_config(sim.url), workdir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def admin(gateway: Server) -> Admin:
    return Admin(gateway.url)


@pytest.fixture
def fresh_key(admin: Admin):  # type: ignore[no-untyped-def]
    """A new key (own name, own spend) for tests that check billing."""
    def make(quota: float | None = None, models: list[str] | None = None) -> tuple[str, str]:
        name = f"test-key-{next(_names)}"
        return name, admin.create_key(name, quota, models)
    return make


@pytest.fixture
def client(gateway: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-alice-0001", max_retries=0)


@pytest.fixture
def sim_http(sim: Server) -> httpx.Client:
    return httpx.Client(base_url=sim.url)
