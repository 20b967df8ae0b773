"""Pure parts of `rater serve`: field checks, token and credential parsing, scopes, the
OpenAPI document against the routes and docs/openapi.json."""

from __future__ import annotations

import base64
import ipaddress
import json
from typing import Any

import pytest
from starlette.routing import Route

from rater.errors import ConfigError
from rater.serve import openapi
from rater.serve.app import all_routes
from rater.serve.bodies import Fields, form_object, is_form, json_object
from rater.serve.calls import AUTH_ID
from rater.serve.credentials import (
    ALL_RESELLERS,
    Scope,
    parse_networks,
    parse_resellers,
    split_token,
)
from rater.serve.gate import _credentials_of
from rater.serve.problems import ApiError
from rater.settings import PROJECT_ROOT

TOKEN = "0123456789ab." + "A" * 43


def _fails(fn: Any, field: str, code: str) -> None:
    with pytest.raises(ApiError) as caught:
        fn()
    assert (caught.value.status, caught.value.field, caught.value.code.value) == (400, field, code)


def test_fields_name_what_is_wrong() -> None:
    fields = Fields({"a": "x", "n": 5, "b": True, "f": 1.0, "e": "  "})
    assert fields.text("a") == "x"
    assert fields.text("missing") is None
    _fails(lambda: fields.text("missing", required=True), "missing", "missing_field")
    _fails(lambda: fields.text("n"), "n", "bad_type")
    _fails(lambda: fields.text("e"), "e", "bad_value")
    assert fields.integer("n", minimum=1, maximum=9) == 5
    _fails(lambda: fields.integer("n", minimum=6, maximum=9), "n", "bad_value")
    _fails(lambda: fields.integer("b", minimum=0, maximum=9), "b", "bad_type")
    _fails(lambda: fields.integer("f", minimum=0, maximum=9), "f", "bad_type")
    _fails(lambda: json_object(b"[]"), "body", "bad_json")
    _fails(lambda: json_object(b'{"a": }'), "body", "bad_json")
    assert json_object(b" ", empty_ok=True) == {}


def test_form_bodies_for_dialplans() -> None:
    """Asterisk's CURL() strips double quotes from its arguments: forms carry no quotes."""
    assert is_form("application/x-www-form-urlencoded; charset=utf-8")
    assert not is_form("application/json")
    assert not is_form(None)
    values = form_object(b"account=C1&callee=%2B31612345678&max_seconds=600&caller=")
    assert values == {"account": "C1", "callee": "+31612345678", "max_seconds": "600", "caller": ""}
    fields = Fields(values, form=True)
    assert fields.integer("max_seconds", minimum=1, maximum=86_400) == 600
    assert fields.text("callee") == "+31612345678"
    _fails(lambda: fields.text("caller"), "caller", "bad_value")  # empty, as in JSON
    _fails(lambda: Fields({"n": "6x"}, form=True).integer("n", minimum=0, maximum=9), "n",
           "bad_type")  # fmt: skip
    _fails(lambda: Fields({"n": "60"}).integer("n", minimum=0, maximum=99), "n", "bad_type")
    _fails(lambda: form_object(b"a=1&a=2"), "a", "conflicting_fields")
    _fails(lambda: form_object(b"a=%ff"), "body", "bad_value")
    _fails(lambda: form_object(b""), "body", "missing_field")
    assert form_object(b"", empty_ok=True) == {}


def test_tokens_and_authorization_headers() -> None:
    assert split_token(TOKEN) == ("0123456789ab", "A" * 43)
    for bad in ("", "0123456789ab", "0123456789ab.short", "XYZ456789ab." + "A" * 43):
        assert split_token(bad) is None
    assert _credentials_of({"authorization": f"Bearer {TOKEN}"}) == (None, TOKEN)
    basic = base64.b64encode(f"sw1:{TOKEN}".encode()).decode()
    assert _credentials_of({"authorization": f"Basic {basic}"}) == ("sw1", TOKEN)
    for header in ({}, {"authorization": "Bearer"}, {"authorization": "Basic x y"}):
        with pytest.raises(ApiError) as caught:
            _credentials_of(header)
        assert caught.value.status == 401


def test_scopes() -> None:
    assert parse_resellers("R1, R2,") == frozenset({"R1", "R2"})
    assert parse_resellers("*") == frozenset({ALL_RESELLERS})
    assert parse_resellers("") == frozenset()
    with pytest.raises(ConfigError):
        parse_resellers("*,R1")
    with pytest.raises(ConfigError):
        parse_resellers("R:1")
    networks = parse_networks("10.0.0.0/8, 192.0.2.7,::1")
    assert networks[1] == ipaddress.ip_network("192.0.2.7/32")
    with pytest.raises(ConfigError, match="not an IP address"):
        parse_networks("10.0.0.256")
    scope = Scope(frozenset({"R1"}), networks)
    assert scope.allows_reseller("R1")
    assert not scope.allows_reseller("R2")
    assert scope.allows_address("10.1.2.3")
    assert scope.allows_address("::1")
    assert not scope.allows_address("192.0.2.8")
    assert not scope.allows_address("")
    assert Scope(frozenset(), ()).allows_address("203.0.113.1")


def test_auth_ids_follow_the_account_layer_rule() -> None:
    assert AUTH_ID.fullmatch("a0123456789abcdef")
    assert AUTH_ID.fullmatch("!~|;") is not None
    for bad in ("", "a:b", "{a}", "a b", "x" * 65, "é"):
        assert AUTH_ID.fullmatch(bad) is None


def test_openapi_documents_every_route_and_matches_the_checked_in_file() -> None:
    document = openapi.DOCUMENT
    for route in all_routes():
        assert isinstance(route, Route)
        assert route.methods is not None
        documented = document["paths"].get(route.path)
        assert documented is not None, f"{route.path} is not in the OpenAPI document"
        for method in route.methods - {"HEAD"}:
            assert method.lower() in documented, f"{method} {route.path} is not documented"
    checked_in = (PROJECT_ROOT / "docs" / "openapi.json").read_text()
    assert checked_in == openapi.text(), (
        "docs/openapi.json is stale: python -m rater.serve.openapi > docs/openapi.json"
    )
    # 4xx answers use the one error shape; there is no 422 anywhere
    text = json.dumps(document)
    assert '"422"' not in text


class _Store:
    """Credentials as plain data: the cache logic of Gate on its own (Redis: integration)."""

    def __init__(self) -> None:
        self.tokens: dict[str, Any] = {}
        self.gen = "g1"
        self.lookups = 0

    def generation(self) -> str:
        return self.gen

    def lookup(self, token_id: str) -> Any:
        self.lookups += 1
        return self.tokens.get(token_id)

    def scope(self, switch: str) -> Scope:
        return Scope(frozenset({"R1"}), ())


def test_gate_cache_follows_the_generation_and_ages_out() -> None:
    from rater.serve.credentials import StoredToken, digest
    from rater.serve.gate import Gate

    now = [0.0]
    store = _Store()
    store.tokens["0123456789ab"] = StoredToken("sw1", digest("A" * 43))
    gate = Gate(store, clock=lambda: now[0])  # type: ignore[arg-type]
    headers = {"authorization": f"Bearer {TOKEN}"}
    assert gate.authenticate(headers, "127.0.0.1").switch == "sw1"
    for _ in range(5):
        gate.authenticate(headers, "127.0.0.1")
    assert store.lookups == 1  # cached
    del store.tokens["0123456789ab"]  # revoked, generation not changed: cached up to 5 s
    now[0] = 4.9
    assert gate.authenticate(headers, "127.0.0.1").switch == "sw1"
    now[0] = 5.0
    with pytest.raises(ApiError) as caught:
        gate.authenticate(headers, "127.0.0.1")
    assert caught.value.status == 401
    store.tokens["0123456789ab"] = StoredToken("sw1", digest("A" * 43))
    store.gen = "g2"  # a change is seen at the next poll, a second later at most
    now[0] = 5.5
    with pytest.raises(ApiError):
        gate.authenticate(headers, "127.0.0.1")  # polled at 5.0: not yet
    now[0] = 6.0
    assert gate.authenticate(headers, "127.0.0.1").switch == "sw1"
    wrong = {"authorization": "Bearer 0123456789ab." + "B" * 43}
    with pytest.raises(ApiError) as caught:
        gate.authenticate(wrong, "127.0.0.1")
    assert caught.value.status == 401
