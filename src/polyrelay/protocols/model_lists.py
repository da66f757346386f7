"""`GET /v1/models` and friends in the three shapes (one path, three clients: protocols.md §5.3)."""

from __future__ import annotations

import msgspec

_OWNER = {"openai": "openai", "anthropic": "anthropic", "gemini": "google"}


def openai_model(model: str, channel_type: str) -> dict[str, object]:
    return {"id": model, "object": "model", "created": 0, "owned_by": _OWNER.get(channel_type, "polyrelay")}


def openai_list(models: list[tuple[str, str]]) -> bytes:
    """`models` = (public name, kind of the channel serving it)."""
    return msgspec.json.encode({"object": "list", "data": [openai_model(m, t) for m, t in models]})


def anthropic_model(model: str) -> dict[str, object]:
    return {"type": "model", "id": model, "display_name": model, "created_at": "2025-01-01T00:00:00Z"}


def anthropic_list(models: list[str]) -> bytes:
    return msgspec.json.encode({"data": [anthropic_model(m) for m in models], "has_more": False,
                                "first_id": models[0] if models else None,
                                "last_id": models[-1] if models else None})


def gemini_model(model: str) -> dict[str, object]:
    return {"name": f"models/{model}", "baseModelId": model, "version": "001", "displayName": model,
            "inputTokenLimit": 1_048_576, "outputTokenLimit": 65_536,
            "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"]}


def gemini_list(models: list[str]) -> bytes:
    return msgspec.json.encode({"models": [gemini_model(m) for m in models]})
