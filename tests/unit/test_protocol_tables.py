"""Every table of per-protocol test data has a row for each protocol of the registry, so a new
protocol fails here until its rows are written (the simulator table: tests/conversion/test_golden.py)."""

from __future__ import annotations

import golden_cases
import sdk_clients
from polyrelay.protocols.registry import PROTOCOLS


def test_every_protocol_has_its_sdk_row_and_golden_client_requests() -> None:
    assert set(sdk_clients.PROTOCOL_ROWS) == set(PROTOCOLS)
    assert set(golden_cases.CLIENTS) == set(PROTOCOLS)
    assert list(PROTOCOLS) == golden_cases.UPSTREAMS


def test_surface_names_name_one_protocol_each() -> None:
    surfaces = [row.surface for row in sdk_clients.PROTOCOL_ROWS.values()]
    assert len(set(surfaces)) == len(surfaces) and set(sdk_clients.CLIENTS) == set(surfaces)
