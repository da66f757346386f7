"""The operation seam (relay/operation.py): every operation the pipeline serves is a record in
`OPERATIONS`, named after a channel endpoint, with the steps that differ as data."""

from __future__ import annotations

import typing

from polyrelay.channels import Operation as ChannelOperation
from polyrelay.relay.operations import OPERATIONS


def test_every_operation_is_a_channel_endpoint_and_every_endpoint_an_operation() -> None:
    assert set(OPERATIONS) == set(typing.get_args(ChannelOperation))
    assert all(name == op.name for name, op in OPERATIONS.items())


def test_generate_is_billed_and_has_both_paths_and_no_fallback() -> None:
    op = OPERATIONS["generate"]
    assert op.billed and op.health and op.fast is not None and op.convert is not None
    assert op.fallback is None and op.log_suffix == ""


def test_count_tokens_is_free_logged_apart_and_estimated_when_no_channel_counts() -> None:
    op = OPERATIONS["count_tokens"]
    assert not op.billed and not op.health and op.fallback is not None
    assert op.log_suffix == ":count_tokens"


def test_the_pipeline_names_no_operation_and_no_protocol() -> None:
    """What differs between operations is data on the record: relay/pipeline.py never branches on a
    name (the structure test covers protocol names across src/; this keeps operations out too)."""
    import ast
    from pathlib import Path

    import polyrelay.relay.pipeline as pipeline
    from polyrelay.protocols.registry import PROTOCOLS

    tree = ast.parse(Path(pipeline.__file__).read_text())
    names = set(OPERATIONS) | set(PROTOCOLS)
    constants = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert not names & set(constants)
    referenced = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert "COUNT_TOKENS" not in referenced   # GENERATE only as the default of relay()
