"""server.router: `{param}` patterns matched once, the parameters handed to the handler, 404 vs 405."""

from __future__ import annotations

from polyrelay.server.app import _router
from polyrelay.server.route import Route
from polyrelay.server.router import Router


async def _nothing(*args: object) -> None:
    raise AssertionError("not called")


def test_patterns_bind_named_parameters_and_path_parameters_take_slashes() -> None:
    router = Router([Route("GET", "/v1/videos/{id}/content", _nothing),      # type: ignore[arg-type]
                     Route("GET", "/v1/models/{model:path}", _nothing)])    # type: ignore[arg-type]
    found = router.match("GET", "/v1/videos/vid_1/content")
    assert found is not None and found[1] == {"id": "vid_1"}
    assert router.match("GET", "/v1/videos/a/b/content") is None          # {id} is one segment
    assert router.match("GET", "/v1/videos//content") is None              # and never empty
    found = router.match("GET", "/v1/models/a\nb")                        # %0A decoded: still the route
    assert found is not None and found[1] == {"model": "a\nb"}
    found = router.match("GET", "/v1/models/org/some-model")
    assert found is not None and found[1] == {"model": "org/some-model"}
    found = router.match("GET", "/v1/models/")     # the handler says which model is missing
    assert found is not None and found[1] == {"model": ""}
    assert router.match("POST", "/v1/models/x") is None


def test_the_gateway_routes() -> None:
    router = _router()
    route, params = router.match("POST", "/v1beta/models/tuned/a:b:streamGenerateContent") or (None, None)
    assert route is not None and route.handler.__name__ == "model_method"
    assert params == {"model": "tuned/a:b", "method": "streamGenerateContent"}   # the method after the last colon
    route, params = router.match("POST", "/v1/models/gemini-2.5-flash") or (None, None)
    assert route is not None and route.handler.__name__ == "no_method"          # Gemini-shaped 404 naming methods
    route, params = router.match("POST", "/v1beta/models/x:a/b") or (None, None)
    assert route is not None and route.handler.__name__ == "no_method"
    route, params = router.match("POST", "/admin/keys/team/alice/disable") or (None, None)
    assert route is not None and params == {"name": "team/alice", "action": "disable"}
    route, params = router.match("GET", "/v1beta/models/") or (None, None)
    assert route is not None and route.handler.__name__ == "get_model"             # a Gemini-shaped 404
    route, params = router.match("POST", "/admin/keys/alice") or (None, None)
    assert route is not None and route.handler.__name__ == "unknown_key_action"
    route, params = router.match("GET", "/v1/models/models/gemini-2.5-flash") or (None, None)
    assert route is not None and params == {"model": "models/gemini-2.5-flash"}
    # 405 only where a literal path is known under another method, as before the router
    assert router.method_not_allowed("/v1/chat/completions")
    assert not router.method_not_allowed("/v1/models/gpt-4o")
    assert router.method_not_allowed("/v1/models/") and router.method_not_allowed("/admin/keys/")
    assert router.match_any_method("/v1beta/models/m:generateContent") is not None
    assert router.match_any_method("/nowhere") is None


def test_a_literal_route_declared_twice_is_refused() -> None:
    try:
        Router([Route("GET", "/x", _nothing), Route("GET", "/x", _nothing)])   # type: ignore[arg-type]
    except ValueError as e:
        assert "declared twice" in str(e)
    else:
        raise AssertionError("accepted")
