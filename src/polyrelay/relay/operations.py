"""The operations the pipeline serves, by name (see relay/operation.py for what a record holds).
A new one (images, embeddings, ...) is its module and one line here."""

from __future__ import annotations

from polyrelay.relay.completions import COMPLETIONS
from polyrelay.relay.count_tokens import COUNT_TOKENS
from polyrelay.relay.embeddings import EMBEDDINGS
from polyrelay.relay.generate import GENERATE
from polyrelay.relay.images import IMAGE_EDITS, IMAGES
from polyrelay.relay.operation import Operation
from polyrelay.relay.videos import VIDEOS


def _registry(*operations: Operation) -> dict[str, Operation]:
    return {op.name: op for op in operations}


OPERATIONS: dict[str, Operation] = _registry(GENERATE, COUNT_TOKENS, COMPLETIONS, EMBEDDINGS, IMAGES, IMAGE_EDITS,
                                             VIDEOS)

__all__ = ["OPERATIONS"]
