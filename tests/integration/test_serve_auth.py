"""Who may ask `rater serve`: switch tokens (Bearer, or Basic switch:token), revocation within
5 s, a token acting only for its own switch, its resellers and its addresses."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from serve_support import Served, World, basic, call, serve, token, world

from rater.cli.main import cli
from rater.serve.credentials import GENERATION, Credentials, token_key
from rater.settings import Settings

pytestmark = pytest.mark.integration

CALLEE = "+31612345678"
BODY = {"account": "C1", "callee": CALLEE, "max_seconds": 60}


@pytest.fixture(scope="module")
def served(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(settings, tmp_path_factory.mktemp("serve-auth")) as running:
        yield running


@pytest.fixture
def w(settings: Settings, redis: Any) -> World:
    return world(settings, redis)


def _name() -> str:
    return f"sw-{uuid.uuid4().hex[:8]}"


def test_money_endpoints_need_a_valid_token(served: Served, w: World, redis: Any) -> None:
    good = token(redis, _name())
    token_id, secret = good.split(".")
    wrong_secret = token_id + "." + ("A" if secret[0] != "A" else "B") + secret[1:]
    unknown = "0123456789ab." + secret
    endpoints = [
        ("POST", "/v1/authorize", BODY),
        ("POST", "/v1/authorize/a0123/renew", None),
        ("POST", "/v1/authorize/a0123/release", None),
        ("GET", f"/v1/cards/{w.card}/balance", None),
        ("GET", "/v1/accounts/C1", None),
    ]
    for method, path, body in endpoints:
        for auth in (
            {},
            {"Authorization": f"Bearer {wrong_secret}"},
            {"Authorization": f"Bearer {unknown}"},
            {"Authorization": "Bearer not-a-token"},
            {"Authorization": f"Token {good}"},
            {"Authorization": "Basic !!!"},
        ):
            headers = {**auth, "X-Card-PIN": w.pin}
            status, answer, response = call(served, method, path, body, headers=headers)
            assert status == 401, (path, headers, answer)
            assert answer["error"]["code"] == "unauthorized"
            assert answer["error"]["field"] == "Authorization"
            assert "Bearer" in response.headers["WWW-Authenticate"]
    status, answer, _ = call(served, "POST", "/v1/authorize", BODY, token=good)
    assert (status, answer["allowed"]) == (200, True)
    assert redis.hget(token_key(token_id), "sha256").decode() != secret  # only the digest


def test_basic_auth_is_switch_colon_token(served: Served, w: World, redis: Any) -> None:
    name, other = _name(), _name()
    tok = token(redis, name)
    status, answer, _ = call(
        served, "POST", "/v1/authorize", BODY, headers={"Authorization": basic(name, tok)}
    )
    assert (status, answer["allowed"]) == (200, True)
    status, answer, _ = call(
        served, "POST", "/v1/authorize", BODY, headers={"Authorization": basic(other, tok)}
    )
    assert (status, answer["error"]["code"]) == (403, "forbidden")


def test_a_token_acts_only_for_its_own_switch(served: Served, w: World, redis: Any) -> None:
    mine, theirs = _name(), _name()
    tok = token(redis, mine)
    token(redis, theirs)
    status, answer, _ = call(served, "POST", "/v1/authorize", {**BODY, "switch": theirs}, token=tok)
    assert (status, answer["error"]["code"], answer["error"]["field"]) == (
        403,
        "forbidden",
        "switch",
    )
    status, answer, _ = call(served, "POST", "/v1/authorize", {**BODY, "switch": mine}, token=tok)
    assert (status, answer["allowed"]) == (200, True)


def test_resellers_the_switch_does_not_act_for_are_403(
    served: Served, w: World, redis: Any
) -> None:
    tok = token(redis, _name(), "R1")
    w.accounts.add_ani(w.other_card, "+31207654321")
    refused = [
        ("POST", "/v1/authorize", {"account": "C2", "callee": CALLEE}),
        ("POST", "/v1/authorize", {"card": w.other_card, "pin": "0000", "callee": CALLEE}),
        ("POST", "/v1/authorize", {"ani": "31207654321", "callee": CALLEE}),
        ("GET", f"/v1/cards/{w.other_card}/balance", None),
        ("GET", "/v1/accounts/C2", None),
    ]
    for method, path, body in refused:
        status, answer, _ = call(
            served, method, path, body, token=tok, headers={"X-Card-PIN": "0000"}
        )
        assert (status, answer["error"]["code"]) == (403, "forbidden"), (path, body, answer)
    # nor may it renew or release the other reseller's reservations
    theirs = token(redis, _name(), "R2")
    _, granted, _ = call(served, "POST", "/v1/authorize", {**BODY, "account": "C2"}, token=theirs)
    for action in ("renew", "release"):
        status, answer, _ = call(
            served, "POST", f"/v1/authorize/{granted['auth_id']}/{action}", token=tok
        )
        assert (status, answer["error"]["code"]) == (403, "forbidden"), action
    assert redis.hget("{r:R2}:rsv:c:C2", granted["auth_id"]) is not None
    redis.delete("{r:R2}:rsv:r:R2", "{r:R2}:rsv:c:C2")
    # no money moved and no wrong PIN was counted against the other reseller's card
    assert redis.keys("{r:R2}:rsv:*") == []
    assert w.accounts.get_card(w.other_card).pin_failures == 0
    # '*' acts for every reseller; no reseller at all acts for none
    everyone = token(redis, _name(), "*")
    status, answer, _ = call(served, "GET", "/v1/accounts/C2", token=everyone)
    assert (status, answer["reseller"]) == (200, "R2")
    nobody = token(redis, _name(), "")
    status, _, _ = call(served, "GET", "/v1/accounts/C1", token=nobody)
    assert status == 403


def test_ip_allow_list(served: Served, w: World, redis: Any) -> None:
    outside = token(redis, _name(), "R1", networks="192.0.2.0/24,2001:db8::/32")
    inside = token(redis, _name(), "R1", networks="10.0.0.0/8,127.0.0.0/8")
    status, answer, _ = call(served, "POST", "/v1/authorize", BODY, token=outside)
    assert (status, answer["error"]["code"]) == (403, "forbidden")
    assert "127.0.0.1" in answer["error"]["message"]
    status, answer, _ = call(served, "POST", "/v1/authorize", BODY, token=inside)
    assert (status, answer["allowed"]) == (200, True)


def test_revoked_tokens_stop_within_5_seconds(served: Served, w: World, redis: Any) -> None:
    name = _name()
    keep, drop = token(redis, name), token(redis, name)
    for tok in (keep, drop):  # both cached by the serve process now
        assert call(served, "GET", "/v1/accounts/C1", token=tok)[0] == 200
    Credentials(redis).revoke(name, [drop.split(".")[0]])
    revoked_at = time.monotonic()
    while call(served, "GET", "/v1/accounts/C1", token=drop)[0] == 200:
        assert time.monotonic() - revoked_at < 5, "a revoked token still works after 5 s"
        time.sleep(0.05)
    assert call(served, "GET", "/v1/accounts/C1", token=keep)[0] == 200
    # even when the generation is not seen to change, no cache entry outlives 5 s
    other = token(redis, name)
    assert call(served, "GET", "/v1/accounts/C1", token=other)[0] == 200
    generation = redis.get(GENERATION)
    redis.delete(token_key(other.split(".")[0]))  # behind the generation's back
    assert redis.get(GENERATION) == generation
    deleted_at = time.monotonic()
    while call(served, "GET", "/v1/accounts/C1", token=other)[0] == 200:
        assert time.monotonic() - deleted_at < 5.5
        time.sleep(0.1)


def test_token_cli(settings: Settings, redis: Any) -> None:
    runner = CliRunner()
    base = ["--redis-url", settings.redis_url]
    name = _name()
    created = runner.invoke(cli, [*base, "switch", "token", "create", name, "--json"])
    assert created.exit_code == 0, created.output

    issued = json.loads(created.output)
    assert set(issued) == {"token", "id", "switch"}
    assert issued["token"].startswith(issued["id"] + ".")
    listed = runner.invoke(cli, [*base, "switch", "token", "list", name])
    assert issued["id"] in listed.output
    assert issued["token"] not in listed.output
    scoped = runner.invoke(
        cli, [*base, "switch", "set", name, "--resellers", "R1,R2", "--allow-ip", "10.0.0.0/8"]
    )
    assert scoped.exit_code == 0, scoped.output
    assert "acts for resellers R1,R2, from 10.0.0.0/8" in scoped.output
    bad = runner.invoke(cli, [*base, "switch", "set", name, "--allow-ip", "10.0.0.300"])
    assert bad.exit_code != 0
    assert "not an IP address" in str(bad.exception or bad.output)
    revoked = runner.invoke(cli, [*base, "switch", "token", "revoke", name])
    assert revoked.exit_code == 0
    assert issued["id"] in revoked.output
    assert Credentials(redis).list_tokens(name) == []
