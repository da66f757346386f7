from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

import sdk_clients
from pg import PgCluster, find_bin
from servers import Admin, Server, free_port, start_gateway, start_simulator

_names = itertools.count()

# The servers and CLI commands the tests start run in temporary directories, where a relative
# PYTHONPATH (`PYTHONPATH=src`) finds nothing: they would silently import the installed polyrelay
# (another tree's code) instead of this one.
if os.environ.get("PYTHONPATH"):
    os.environ["PYTHONPATH"] = os.pathsep.join(
        str(Path(p).resolve()) for p in os.environ["PYTHONPATH"].split(os.pathsep) if p)


@pytest.fixture(autouse=True)
def _close_sdk_clients() -> Iterator[None]:
    yield
    sdk_clients.close_all()


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
  - name: responses
    type: openai
    api: responses
    base_url: {sim_url}/v1
    api_keys: [sk-up-responses]
    models: [gpt-resp-mini]
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
  gpt-resp-mini: {{input: 1.25, output: 10.0, cached_input: 0.125}}
  slow-model: {{input: 1.0, output: 2.0}}
  leaky-model: {{input: 1.0, output: 2.0}}
  deepseek-sim-reasoner: {{input: 0.28, output: 0.42}}
# free-model has no price: refused (tests/e2e/test_billing_limits.py)
"""


@pytest.fixture(scope="session")
def gateway(sim: Server, workdir: Path) -> Iterator[Server]:
    server = start_gateway(main_config(sim.url), workdir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def admin(gateway: Server) -> Admin:
    return Admin(gateway.url)


def _key_maker(admin: Admin):  # type: ignore[no-untyped-def]
    def make(quota: float | None = None, models: list[str] | None = None) -> tuple[str, str]:
        name = f"test-key-{next(_names)}"
        return name, admin.create_key(name, quota, models)
    return make


@pytest.fixture
def fresh_key(admin: Admin):  # type: ignore[no-untyped-def]
    """A new key (own name, own spend) for tests that check billing."""
    return _key_maker(admin)


# ---- Postgres: a private cluster (tests/pg.py), and the tests that run on both databases ----------

@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A private PostgreSQL server for the session (loopback, temp dir), stopped by PID at the end."""
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        pytest.fail("asyncpg is missing: pip install -e '.[test]' (it is in the test extra)")
    bin_dir = find_bin()
    if bin_dir is None:
        message = ("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): "
                   "apt-get install postgresql")
        if os.environ.get("POLYRELAY_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    cluster = PgCluster(bin_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> str:
    """Run the test once on SQLite and once on a real Postgres server."""
    return request.param


@pytest.fixture
def new_database_url(database: str, request: pytest.FixtureRequest,
                     tmp_path: Path) -> Callable[[str], str]:
    """`make(name)`: the URL of a new, empty database of the test's kind (a file or a Postgres database)."""
    def make(name: str) -> str:
        if database == "sqlite":
            return f"sqlite:///{tmp_path / name}.db"
        return request.getfixturevalue("pg_cluster").database(name)
    return make


@pytest.fixture(scope="session")
def pg_gateway(sim: Server, workdir: Path, pg_cluster: PgCluster) -> Iterator[Server]:
    """The main config's gateway on Postgres (its own database in the session's cluster)."""
    server = start_gateway(main_config(sim.url), workdir, database_url=pg_cluster.database("gateway"))
    yield server
    server.stop()


@pytest.fixture
def db_gateway(database: str, request: pytest.FixtureRequest) -> Server:
    """The main config's gateway on the test's database (`gateway` for SQLite, `pg_gateway`)."""
    return request.getfixturevalue("gateway" if database == "sqlite" else "pg_gateway")


@pytest.fixture
def db_admin(db_gateway: Server) -> Admin:
    return Admin(db_gateway.url)


@pytest.fixture
def db_fresh_key(db_admin: Admin):  # type: ignore[no-untyped-def]
    """fresh_key on the test's database."""
    return _key_maker(db_admin)


@pytest.fixture
def client(gateway: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-alice-0001", max_retries=0)


@pytest.fixture
def sim_http(sim: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url) as http:
        yield http
