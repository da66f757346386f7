"""The package graph stays a graph: no import cycles among polyrelay modules, and no wire protocol
named outside the packages that own protocols (protocols/, channels/, sim/) and the registries that
list them (issue 11). Read from the source with `ast`, so the check needs nothing installed."""

from __future__ import annotations

import ast
from pathlib import Path

from polyrelay.protocols.registry import PROTOCOLS

SRC = Path(__file__).resolve().parents[2] / "src"
# where naming a protocol is the point: its own package, the channel kinds that speak it, the
# simulator that plays it, and the tables that list them (protocol registry, surfaces, the route
# tables of server/, the channel types of the configuration)
OWNERS = ("polyrelay.protocols", "polyrelay.channels", "polyrelay.sim", "polyrelay.server")
REGISTRIES = {"polyrelay.relay.surfaces", "polyrelay.config"}
SURFACE_NAMES = {"OPENAI_CHAT", "ANTHROPIC_MESSAGES", "GEMINI"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "polyrelay").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _top_level_imports(name: str, tree: ast.Module) -> set[str]:
    """polyrelay modules imported when `name` is (function-local imports are deliberate deferrals)."""
    is_package = MODULES[name].name == "__init__.py"
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in MODULES}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:   # relative: from the package this module is in
                anchor = name.split(".")
                anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in MODULES:
                    out.add(sub)
                elif base in MODULES:
                    out.add(base)
    out.discard(name)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_among_polyrelay_modules() -> None:
    graph = {name: _top_level_imports(name, ast.parse(path.read_text())) for name, path in MODULES.items()}
    assert sum(len(v) for v in graph.values()) > 100   # the parser sees the imports
    assert _cycles(graph) == []


def _protocol_names_in(tree: ast.Module) -> list[str]:
    names = set(PROTOCOLS)
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if node.value in names:
                found.append(f"line {node.lineno}: {node.value!r}")
        elif isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                ref = side.attr if isinstance(side, ast.Attribute) else side.id if isinstance(side, ast.Name) else ""
                if ref in SURFACE_NAMES:
                    found.append(f"line {node.lineno}: compares with {ref}")
    return found


def test_no_protocol_names_outside_protocols_channels_sim_and_registries() -> None:
    offenders = {}
    for name, path in MODULES.items():
        if name.startswith(OWNERS) or name in REGISTRIES:
            continue
        hits = _protocol_names_in(ast.parse(path.read_text()))
        if hits:
            offenders[name] = hits
    assert offenders == {}


def test_the_checks_see_what_they_look_for() -> None:
    """The two checks above would catch what issue 11 removed from relay/."""
    old_relay = ast.parse('if channel.protocol == "anthropic_messages" or surface is GEMINI:\n    pass\n')
    assert len(_protocol_names_in(old_relay)) == 2
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


# Packages under protocols/ that are no wire protocol on the IR but the wire format of one operation
# beside chat: not in PROTOCOLS (no channel speaks them, so they have no fast path, decoder or
# renderer of their own to hold to the seven files); named here, with the reason, so that a new
# package says which kind it is.
OPERATION_PACKAGES = {
    "openai_completions": "legacy completions: a client surface only; converted to the chat-like protocols",
    "openai_embeddings": "embeddings: vectors, not a conversation; converted to Gemini's embed API",
    "images": "the OpenAI images API and Gemini image models, converted through their own neutral form "
              "(protocols/images/call.py)",
}


def test_every_package_under_protocols_is_a_protocol_or_an_operation_package() -> None:
    packages = {p.parent.name for p in (SRC / "polyrelay" / "protocols").glob("*/__init__.py")}
    assert packages == set(PROTOCOLS) | set(OPERATION_PACKAGES)
    assert not set(PROTOCOLS) & set(OPERATION_PACKAGES)


def test_every_protocol_package_has_the_same_files() -> None:
    expected = {"__init__.py", "wire.py", "request.py", "response.py", "stream.py", "errors.py", "fastpath.py"}
    for name in PROTOCOLS:
        package = SRC / "polyrelay" / "protocols" / name
        assert {p.name for p in package.glob("*.py")} == expected, name


def test_private_protocol_modules_stay_inside_protocols() -> None:
    """`protocols/_*.py` are the packages' shared internals; the relay gets what it needs from
    `polyrelay.protocols` and the registry."""
    outside = {name: sorted(i for i in _top_level_imports(name, ast.parse(path.read_text()))
                            if i.startswith("polyrelay.protocols._"))
               for name, path in MODULES.items() if not name.startswith("polyrelay.protocols")}
    assert {name: hits for name, hits in outside.items() if hits} == {}
