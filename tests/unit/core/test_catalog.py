"""catalog.Catalog: channels, routing, prices and config keys read through one object, replaced whole
by reload() (a request that took the old router keeps it; the next one sees only the new catalog)."""

from __future__ import annotations

from polyrelay.catalog import Catalog
from polyrelay.config import parse_config

BEFORE = """
channels:
  - {name: a, type: openai, base_url: "http://127.0.0.1:9/v1", models: [m1, m2], api_keys: [sk-old-channel-1]}
prices:
  m1: {input: 1, output: 2}
keys:
  - {name: k, key: sk-gateway-old-1}
"""
AFTER = """
channels:
  - {name: b, type: anthropic, base_url: "http://127.0.0.1:9", models: [m3], api_keys: [sk-new-channel-1]}
prices:
  m3: {input: 3, output: 4}
unpriced: free
keys:
  - {name: k2, key: sk-gateway-new-1}
"""


def test_reload_swaps_channels_prices_and_keys_together() -> None:
    catalog = Catalog(parse_config(BEFORE))
    old_router = catalog.router
    assert old_router.models() == ["m1", "m2"] and set(catalog.prices) == {"m1"}
    assert catalog.unpriced == ("m2",) and not catalog.unpriced_free
    assert {"sk-old-channel-1", "sk-gateway-old-1"} <= set(catalog.secrets())

    catalog.reload(parse_config(AFTER))
    assert catalog.router is not old_router and catalog.router.models() == ["m3"]
    assert [c.name for c in catalog.channels] == ["b"] and catalog.channels[0].protocol == "anthropic_messages"
    assert set(catalog.prices) == {"m3"} and catalog.unpriced == () and catalog.unpriced_free
    assert [k.name for k in catalog.keys] == ["k2"]
    assert set(catalog.secrets()) == {"sk-new-channel-1", "sk-gateway-new-1"}
    # what a request under way holds is the old catalog's, unchanged
    assert old_router.models() == ["m1", "m2"]
