"""`polyrelay demo`: the simulator and a gateway in one process, on a database of its own.

The demo's config disables every key that is not its own (keys left the config) and enables a
public key, so it must never run on a database that holds other keys: by default it makes a
temporary SQLite file and deletes it at the end; a database named with --database is refused when
it holds any key but the demo's. Every snippet it prints runs as printed (tests/e2e/test_readme.py).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from polyrelay.commands.database import Database, fail, has_schema
from polyrelay.store.keys import hash_key
from polyrelay.store.tables import api_keys

DEMO_KEY = "sk-demo-0001"
DEMO_MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo-instruct", "text-embedding-3-small", "claude-sonnet-4-6",
               "claude-sonnet-4-6-thinking", "gemini-2.5-flash", "gemini-embedding-001"]


def demo_config(sim_url: str) -> str:
    return f"""\
channels:
  - name: simulator
    type: openai
    base_url: {sim_url}/v1
    api_keys: [sk-sim-upstream]
    models: [gpt-4o-mini, gpt-4o, gpt-3.5-turbo-instruct, text-embedding-3-small]
    model_map: {{gpt-4o: gpt-4o-2024-11-20}}
  - name: simulated-anthropic
    type: anthropic
    base_url: {sim_url}
    api_keys: [sk-ant-sim-upstream]
    models: [claude-sonnet-4-6, claude-sonnet-4-6-thinking]
  - name: simulated-gemini
    type: gemini
    base_url: {sim_url}
    api_keys: [gemini-sim-upstream]
    models: [gemini-2.5-flash, gemini-embedding-001]
keys:
  - name: demo
    key: {DEMO_KEY}
    quota: 5.0
prices:
  gpt-4o-mini: {{input: 0.15, output: 0.60, cached_input: 0.075}}
  gpt-4o: {{input: 2.50, output: 10.00, cached_input: 1.25}}
  claude-sonnet-4-6: {{input: 3.00, output: 15.00, cached_input: 0.30}}
  claude-sonnet-4-6-thinking: {{input: 3.00, output: 15.00, cached_input: 0.30}}
  gemini-2.5-flash: {{input: 0.30, output: 2.50, cached_input: 0.03}}
  gpt-3.5-turbo-instruct: {{input: 1.50, output: 2.00}}
  text-embedding-3-small: {{input: 0.02}}
  gemini-embedding-001: {{input: 0.15}}
"""


def temporary_database() -> tuple[Database, Path]:
    folder = Path(tempfile.mkdtemp(prefix="polyrelay-demo-"))
    return Database(f"sqlite:///{folder / 'demo.db'}", "temporary"), folder


def remove_temporary(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


async def refuse_foreign_keys(engine: AsyncEngine) -> None:
    """A database with keys other than the demo's belongs to someone: the demo's config would
    disable them and enable the public demo key there."""
    if not await has_schema(engine):
        return
    async with engine.connect() as conn:
        names = (await conn.execute(select(api_keys.c.name).where(
            api_keys.c.key_hash != hash_key(DEMO_KEY)).order_by(api_keys.c.id).limit(4))).scalars().all()
    if names:
        shown = ", ".join(repr(n) for n in names[:3]) + (", ..." if len(names) > 3 else "")
        fail(f"the demo will not run on a database with other keys ({shown}): it would disable them; "
             "leave out --database (a temporary one) or name a new database")


def banner(port: int, sim_port: int, db: Database, env_ignored: bool) -> str:
    gateway = f"http://127.0.0.1:{port}"
    ignored = "; POLYRELAY_DATABASE_URL is not used by the demo" if env_ignored else ""
    return f"""\
polyrelay demo: the gateway in front of a simulated OpenAI, Anthropic and Gemini (no network, no cost)
  gateway    {gateway}  (OpenAI SDKs: {gateway}/v1)
  simulator  http://127.0.0.1:{sim_port}
  key        {DEMO_KEY}  (quota $5.00)
  models     {", ".join(DEMO_MODELS)}
  database   {db.describe()}{ignored}

Try it from another shell (the Python examples need the SDKs: pip install 'polyrelay[sdk]'):

{snippets(port)}
Ctrl-C stops the demo."""


def snippets(port: int) -> str:
    gateway = f"http://127.0.0.1:{port}"
    return f"""\
curl {gateway}/v1/chat/completions -H 'Authorization: Bearer {DEMO_KEY}' \\
  -H 'Content-Type: application/json' \\
  -d '{{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": "Hello!"}}]}}'

python3 - <<'EOF'
from openai import OpenAI

client = OpenAI(base_url="{gateway}/v1", api_key="{DEMO_KEY}")
reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "Hello!"}}])
print(reply.choices[0].message.content)
EOF

# Any SDK reaches any model (the gateway converts): the Anthropic SDK asks an OpenAI model,
python3 - <<'EOF'
import anthropic

client = anthropic.Anthropic(base_url="{gateway}", api_key="{DEMO_KEY}")
message = client.messages.create(model="gpt-4o-mini", max_tokens=100, messages=[{{"role": "user", "content": "Hi"}}])
print(message.content[0].text)
EOF

# and the Google GenAI SDK a Claude model:
python3 - <<'EOF'
from google import genai
from google.genai import types

client = genai.Client(api_key="{DEMO_KEY}", http_options=types.HttpOptions(base_url="{gateway}"))
print(client.models.generate_content(model="claude-sonnet-4-6", contents="Hi").text)
EOF

# What the key has left (OpenAI's billing endpoint, in USD):
curl {gateway}/v1/dashboard/billing/subscription -H 'Authorization: Bearer {DEMO_KEY}'
"""

