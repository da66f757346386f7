"""The README's quick start: `polyrelay demo` serves all three SDKs against the built-in simulator."""

from __future__ import annotations

from pathlib import Path

import anthropic
import openai
from google import genai
from google.genai import types

from servers import Server, free_port


def test_demo_answers_every_sdk_on_every_kind_of_channel(tmp_path: Path) -> None:
    port, sim_port = free_port(), free_port()
    demo = Server(["demo", "--port", str(port), "--sim-port", str(sim_port)], port, tmp_path).start()
    try:
        text = openai.OpenAI(base_url=demo.url + "/v1", api_key="sk-demo-0001").chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Hi"}]).choices[0].message.content
        assert text
        claude = anthropic.Anthropic(base_url=demo.url, api_key="sk-demo-0001")
        assert claude.messages.create(model="gemini-2.5-flash", max_tokens=50,
                                      messages=[{"role": "user", "content": "Hi"}]).content[0].text == text
        client = genai.Client(api_key="sk-demo-0001", http_options=types.HttpOptions(base_url=demo.url))
        assert client.models.generate_content(model="claude-sonnet-4-6", contents="Hi").text == text
        log = demo.log.read_text()
        assert "curl" in log and "sk-demo-0001" in log
    finally:
        demo.stop()
