"""POST /v1/cdrs/{switch}: mod_json_cdr's posts through `rater serve` into the real pipeline.

200 only once the broker acknowledged the record (503 while Kafka is away, so the module keeps
the CDR); the same document posted twice is charged once; a B-leg is 200 and never billed; a
body that can never be a CDR is 400 with the reason."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from pipeline_world import make_world, own_topics, run_in_process
from serve_support import Served, basic, call, serve, token

from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.switches.registry import SwitchRegistry
from rater.tariffs.model import SwitchSettings

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[1] / "fixtures" / "switches" / "freeswitch"
A_LEG = (FIXTURES / "a_9e0c7b8a-4f2d-4c59-a8a5-0c1f3d9b7e21.cdr.json").read_bytes()
B_LEG = (FIXTURES / "3f6a1b2c-7d8e-4f90-a1b2-c3d4e5f60718.cdr.json").read_bytes()
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def topics(settings: Settings) -> Settings:
    return own_topics(settings, "serve-cdrs")


@pytest.fixture(scope="module")
def served(topics: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(topics, tmp_path_factory.mktemp("serve-cdrs")) as running:
        yield running


def _switch(redis: RedisLike) -> tuple[str, str]:
    name = f"fs-{uuid.uuid4().hex[:8]}"
    SwitchRegistry(redis).set(SwitchSettings(name=name, format="freeswitch-json"))
    return name, token(redis, name, "res1")


def _post(served: Served, switch: str, body: bytes, **headers: str) -> tuple[int, Any]:
    status, answer, _ = call(served, "POST", f"/v1/cdrs/{switch}?uuid=x", raw=body, headers=headers)
    return status, answer


def test_posts_are_rated_once_b_legs_skipped(
    topics: Settings, served: Served, redis: RedisLike, ch: Any
) -> None:
    make_world(topics, redis, cards=0)
    switch, tok = _switch(redis)
    form = b"cdr=" + quote(A_LEG.decode(), safe="").encode()  # encode=true, the default
    auth = {"Authorization": basic(switch, tok)}  # mod_json_cdr's cred = switch:token
    status, answer = _post(served, switch, form, **auth, **FORM)
    assert (status, answer["cdr_id"], answer["other_leg"]) == (
        200, "9e0c7b8a-4f2d-4c59-a8a5-0c1f3d9b7e21", False,
    )  # fmt: skip
    bearer = {"Authorization": f"Bearer {tok}"}
    assert _post(served, switch, B_LEG, **bearer)[1]["other_leg"] is True
    run_in_process(topics)
    before = redis.hget(keys.customer("res1", "cust1"), "bal")
    # the module retries a post it thinks failed, and err-log-dir files are sent again later
    assert _post(served, switch, A_LEG, **bearer)[0] == 200
    assert _post(served, switch, b"cdr=" + base64.b64encode(A_LEG), **bearer)[0] == 200
    again = run_in_process(topics)
    assert again.outcomes.get(("duplicate", ""), 0) == 2
    assert redis.hget(keys.customer("res1", "cust1"), "bal") == before
    rows = ch.execute(
        "SELECT cdr_id, outcome, billsec FROM rated_cdrs WHERE switch = %(s)s", {"s": switch}
    )
    assert rows == [("9e0c7b8a-4f2d-4c59-a8a5-0c1f3d9b7e21", "rated", 125)]


def test_what_can_never_be_a_cdr_is_400_and_other_switches_403(
    served: Served, redis: RedisLike
) -> None:
    switch, tok = _switch(redis)
    bearer = {"Authorization": f"Bearer {tok}"}
    status, answer = _post(served, switch, b"<xml/>", **bearer)
    assert (status, answer["error"]["code"]) == (400, "bad_json")
    no_uuid = json.loads(A_LEG)
    del no_uuid["variables"]["uuid"]
    status, answer = _post(served, switch, json.dumps(no_uuid).encode(), **bearer)
    assert status == 400
    assert "variables.uuid" in answer["error"]["message"]
    assert _post(served, f"{switch}-other", A_LEG, **bearer)[0] == 403
    assert _post(served, switch, A_LEG)[0] == 401


def test_kafka_away_is_503_so_the_module_keeps_the_cdr(
    topics: Settings, redis: RedisLike, tmp_path: Path
) -> None:
    switch, tok = _switch(redis)
    away = topics.replace(kafka_bootstrap="127.0.0.1:9")  # nothing listens there
    with serve(away, tmp_path) as running:
        status, answer = _post(running, switch, A_LEG, Authorization=f"Bearer {tok}")
    assert (status, answer["error"]["code"]) == (503, "unavailable")
