"""A deterministic value that satisfies a JSON Schema (for simulated tool arguments and JSON output)."""

from __future__ import annotations

from typing import Any


def value_for(schema: dict[str, Any] | None, defs: dict[str, Any] | None = None, depth: int = 0) -> Any:
    if not isinstance(schema, dict) or depth > 8:
        return {}
    defs = defs if defs is not None else (schema.get("$defs") or schema.get("definitions") or {})
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in defs:
        return value_for(defs[ref.rsplit("/", 1)[-1]], defs, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for union in ("anyOf", "oneOf", "allOf"):
        if schema.get(union):
            return value_for(schema[union][0], defs, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    kind = str(kind).lower()
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: value_for(sub, defs, depth + 1) for name, sub in props.items()}
    if kind == "array":
        return [value_for(schema.get("items"), defs, depth + 1)] * max(1, int(schema.get("minItems", 1)))
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "Paris" if "city" in str(schema.get("description", "")).lower() else "sample"
