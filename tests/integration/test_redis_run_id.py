"""Which Redis server processes answer (rater/redis/topology.py `run_id`): the Redis-loss
check of every worker asks it before each batch's debit (rater/billing/recovery.py), on one
server and on Redis Cluster, where it is the run id of every primary."""

from __future__ import annotations

import re

from redis_targets import Target, target  # noqa: F401 - the fixture

from rater.billing.recovery import Recovery
from rater.redis.topology import topology_of

RUN_ID = re.compile(r"[0-9a-f]{40}")


def test_run_id_names_every_primary_and_stays_while_they_run(target: Target) -> None:  # noqa: F811
    topology = topology_of(target.client)
    ids = topology.run_id().split(",")
    assert len(ids) == (3 if target.name == "cluster" else 1), ids
    assert all(RUN_ID.fullmatch(one) for one in ids), ids
    assert topology.run_id() == ",".join(ids)


def test_the_loss_check_sees_the_first_server_as_a_change_and_then_none(
    target: Target,  # noqa: F811
) -> None:
    recovery = Recovery(target.settings, topology_of(target.client))
    assert recovery.server_changed()
    assert not recovery.server_changed()
