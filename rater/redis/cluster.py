"""The former Redis Cluster functions of rater/accounts/, kept as thin calls into the topology
layer (rater/redis/topology.py) until rater/accounts/api.py and authorize.py use it directly:

    is_cluster(client)            -> not topology_of(client).global_keys
    route(reseller_id)            -> [topology.route(reseller_id)]
    sync_ani(client, res, number) -> topology_of(client).sync_ani(res, number)
    fund_card_batch(...)          -> topology_of(client).fund_card_batch(...)
    create_cards(...)             -> topology_of(client).create_card_chunk(...)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rater.redis import topology
from rater.redis.scripts import Script


def is_cluster(client: Any) -> bool:
    return not topology.topology_of(client).global_keys


def route(reseller_id: str) -> list[str]:
    """KEYS for a per-slot script call: the reseller's hash (its slot is the tag's)."""
    return [topology.route(reseller_id)]


def sync_ani(client: Any, reseller_id: str, number: str) -> None:
    topology.topology_of(client).sync_ani(reseller_id, number)


def fund_card_batch(
    client: Any, script: Script, *, reseller_id: str, customer_id: str, batch_id: str,
    args: Sequence[Any],
) -> tuple[int, Any]:  # fmt: skip
    return topology.topology_of(client).fund_card_batch(
        script, reseller_id=reseller_id, customer_id=customer_id, batch_id=batch_id, args=args
    )


def create_cards(
    client: Any, script: Script, *, reseller_id: str, customer_id: str, numbers: Sequence[str],
    args: Sequence[Any],
) -> tuple[int, Any]:  # fmt: skip
    return topology.topology_of(client).create_card_chunk(
        script, reseller_id=reseller_id, customer_id=customer_id, numbers=numbers, args=args
    )
