"""How rater reaches Redis: one server, or Redis Cluster (docs/REDIS_KEYS.md, "Topology").

Callers see one interface and never ask which one they have:

- `run(script, route, args)`: a script on the slot of the key `route` (KEYS[1]; the scripts
  build their other keys from the ids in ARGV, all in that slot);
- `split(routes)` / `run_each(script, calls)`: a batch cut into one call per slot, and those
  calls sent together (one cluster pipeline: every node works at once);
- `mget`, `raise_to`: global keys, whichever slots they live in;
- `global_keys`: whether a script may also touch keys outside its slot (one server: the ANI
  index inside `settle_card`, the de-duplication records of every reseller in `d:<bucket>`);
  `global_arg` is the same as the scripts' `global` argument ('1' or '0');
- `beside(queue, *command)`: a command on a global key that a script does itself on one
  server, queued by its caller beside the script call on Redis Cluster (the auth index of a
  reservation);
- `server_time(route)`: Redis' clock (epoch s) on the node that holds the slot of `route`;
- `run_id()`: which server processes answer (another one after a restart or a failover);
- `sync_ani_after` / `sync_ani`: on Redis Cluster, the global `ani:` keys brought in line with a
  card's `anion` flag after a script changed it (on one server the script already did);
- `claim(script, rows)`: cross-reseller de-duplication before a batch's per-slot debit calls
  (Redis Cluster, rater/redis/claims.py; on one server debit.lua finds every copy itself);
- `fund_card_batch` / `create_card_chunk`: create_cards.lua with its global `batchid:` / `card:`
  keys reserved first (SET NX) on Redis Cluster and released when the script refuses (its
  `global` argument, global_arg, tells it which).

`topology_of(client)` is the only place that looks at the client's type.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from rater.errors import DebitError
from rater.redis import claims, keys
from rater.redis.codes import CreateCardsCode
from rater.redis.connection import RedisLike
from rater.redis.connection import connect as _connect
from rater.redis.scripts import Script
from rater.settings import Settings

Rows = npt.NDArray[np.intp]

#: raise a counter, never lower it (replays of older batches run concurrently with new ones)
_RAISE = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
"""


def route(reseller_id: str) -> str:
    """The key that routes a per-reseller script call: the reseller's hash (`{r:}:res` for
    CDRs of unknown accounts)."""
    return keys.reseller(reseller_id)


class Topology(ABC):
    """One server or Redis Cluster; see the module doc."""

    #: "single" or "cluster" (reports and tests)
    name: str
    #: scripts may touch keys outside the slot of their route (one server)
    global_keys: bool

    def __init__(self, client: RedisLike) -> None:
        self.client: Any = client  # bytes replies (redis-py's stubs say bytes | str)

    @property
    def global_arg(self) -> str:
        """The scripts' `global` argument: '1' when they may touch keys of other slots."""
        return "1" if self.global_keys else "0"

    # ------------------------------------------------------------------ scripts
    def script(self, name: str) -> Script:
        return Script(self.client, name)

    def run(self, script: Script, route_key: str, args: Sequence[Any]) -> Any:
        """One script call on the slot of route_key."""
        return script([route_key], list(args))

    @abstractmethod
    def run_each(self, script: Script, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several script calls, each on the slot of its route key; replies in call order."""

    @abstractmethod
    def split(self, routes: Sequence[str]) -> list[tuple[str, Rows]]:
        """Rows (indexes into routes, ascending) grouped into the calls a batch needs: one call
        on one server, one per slot on Redis Cluster; each with the route key of its call."""

    @abstractmethod
    def claim(self, script: Script, rows: Callable[[], claims.ClaimRows]) -> dict[int, bytes]:
        """Claim a batch's CDRs across resellers before its debit calls; the records of other
        slots each call must see, by 0-based row of the batch. `rows` is called only when
        claims are needed (Redis Cluster)."""

    @abstractmethod
    def record_bucket(self, reseller_id: str, bucket: int) -> str:
        """The hash holding the de-duplication records of a reseller's CDRs in one time bucket
        (`d:<bucket>` on one server, `{r:<R>}:d:<bucket>` on Redis Cluster)."""

    # ------------------------------------------------------------------ global keys
    @abstractmethod
    def mget(self, names: Sequence[str]) -> list[Any]:
        """GET of many keys, whatever their slots."""

    @abstractmethod
    def beside(self, queue: Callable[..., object], *command: object) -> None:
        """`queue(*command)` on Redis Cluster, where a script cannot reach a global key its
        one-server run writes itself (global_arg); nothing on one server."""

    @abstractmethod
    def server_time(self, route_key: str) -> int:
        """Redis' clock (epoch s) on the node holding the slot of route_key."""

    @abstractmethod
    def run_id(self) -> str:
        """The run id of the Redis process answering (of every primary on Redis Cluster):
        another one after a restart or a promoted replica (rater/billing/recovery.py)."""

    def raise_to(self, key: str, value: int) -> None:
        """Set key to value unless it already holds a higher one."""
        self.client.eval(_RAISE, 1, key, str(value))

    @abstractmethod
    def sync_ani(self, reseller_id: str, number: str) -> None:
        """Make the global `ani:` keys of a card follow its `anion` flag (Redis Cluster)."""

    def sync_ani_after(self, reseller_id: str, changes: Iterable[tuple[str, str]]) -> None:
        """sync_ani for every card of (event kind, card number) reported as ani_on or ani_off."""
        for number in sorted({n for kind, n in changes if kind in ("ani_on", "ani_off")}):
            self.sync_ani(reseller_id, number)

    # ------------------------------------------------------------------ card batches
    @abstractmethod
    def fund_card_batch(
        self, script: Script, *, reseller_id: str, customer_id: str, batch_id: str,
        args: Sequence[Any],
    ) -> tuple[int, Any]:  # fmt: skip
        """create_cards.lua's 'fund' phase; (code, detail), BATCH_TAKEN when the id is taken."""

    @abstractmethod
    def create_card_chunk(
        self, script: Script, *, reseller_id: str, customer_id: str, numbers: Sequence[str],
        args: Sequence[Any],
    ) -> tuple[int, Any]:  # fmt: skip
        """create_cards.lua's 'cards' phase for one chunk; (code, detail), NUMBER_TAKEN with
        the number some other card already has."""


class SingleServer(Topology):
    """One Redis server: every key is reachable from every script."""

    name = "single"
    global_keys = True

    def run_each(self, script: Script, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        return [self.run(script, route_key, args) for route_key, args in calls]

    def split(self, routes: Sequence[str]) -> list[tuple[str, Rows]]:
        if not routes:
            return []
        return [(routes[0], np.arange(len(routes), dtype=np.intp))]

    def claim(self, script: Script, rows: Callable[[], claims.ClaimRows]) -> dict[int, bytes]:
        return {}  # debit.lua reads every reseller's records in `d:<bucket>` itself

    def record_bucket(self, reseller_id: str, bucket: int) -> str:
        return keys.records(bucket)

    def mget(self, names: Sequence[str]) -> list[Any]:
        return list(self.client.mget(list(names))) if names else []

    def sync_ani(self, reseller_id: str, number: str) -> None:
        return None  # the scripts keep the ANI index themselves (global_keys)

    def beside(self, queue: Callable[..., object], *command: object) -> None:
        return None  # the script did it (global_arg '1')

    def server_time(self, route_key: str) -> int:
        seconds, _ = self.client.time()
        return int(seconds)

    def run_id(self) -> str:
        return str(self.client.info("server")["run_id"])

    # create_cards.lua keeps the global card:/batchid: keys itself (its global argument '1')
    def fund_card_batch(
        self, script: Script, *, reseller_id: str, customer_id: str, batch_id: str,
        args: Sequence[Any],
    ) -> tuple[int, Any]:  # fmt: skip
        code, detail = self.run(script, route(reseller_id), args)
        return int(code), detail

    def create_card_chunk(
        self, script: Script, *, reseller_id: str, customer_id: str, numbers: Sequence[str],
        args: Sequence[Any],
    ) -> tuple[int, Any]:  # fmt: skip
        code, detail = self.run(script, route(reseller_id), args)
        return int(code), detail


class Cluster(Topology):
    """Redis Cluster: a script touches the keys of one slot; global keys are reached apart."""

    name = "cluster"
    global_keys = False

    def run_each(self, script: Script, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        if not script.loaded:
            script.load()
        for attempt in range(2):
            pipe = self.client.pipeline(transaction=False)
            for route_key, args in calls:
                pipe.execute_command("EVALSHA", script.sha, 1, route_key, *args)
            replies = pipe.execute(raise_on_error=False)
            errors = [r for r in replies if isinstance(r, Exception)]
            if not errors:
                return list(replies)
            if attempt == 0 and all(isinstance(e, redis.exceptions.NoScriptError) for e in errors):
                script.load()  # sent to every primary
                continue
            raise DebitError(f"{script.name} on Redis Cluster: {errors[0]}") from errors[0]
        raise AssertionError("unreachable")

    def split(self, routes: Sequence[str]) -> list[tuple[str, Rows]]:
        slots: dict[int, tuple[str, list[int]]] = {}
        slot_of: dict[str, int] = {}
        for i, key in enumerate(routes):
            slot = slot_of.get(key)
            if slot is None:
                slot = slot_of[key] = key_slot(key.encode())
            slots.setdefault(slot, (key, []))[1].append(i)
        return [(key, np.asarray(rows, dtype=np.intp)) for key, rows in slots.values()]

    def claim(self, script: Script, rows: Callable[[], claims.ClaimRows]) -> dict[int, bytes]:
        return claims.claim(self, script, rows())

    def record_bucket(self, reseller_id: str, bucket: int) -> str:
        return keys.reseller_records(reseller_id, bucket)

    def mget(self, names: Sequence[str]) -> list[Any]:
        return list(self.client.mget_nonatomic(list(names))) if names else []

    def sync_ani(self, reseller_id: str, number: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(keys.card(reseller_id, number), "anion")
        pipe.smembers(keys.card_anis(reseller_id, number))
        anion, anis = pipe.execute()
        if not anis:
            return
        pipe = self.client.pipeline(transaction=False)
        for raw in anis:
            digits = raw.decode()
            if anion == b"1":
                pipe.set(keys.ani_index(digits), number)
            else:
                pipe.delete(keys.ani_index(digits))
        pipe.execute()

    def beside(self, queue: Callable[..., object], *command: object) -> None:
        queue(*command)

    def server_time(self, route_key: str) -> int:
        node = self.client.get_node_from_key(route_key)
        seconds, _ = self.client.time(target_nodes=node)
        return int(seconds)

    def run_id(self) -> str:
        # INFO goes to one node unless told otherwise (a flat answer): ask every primary,
        # answered as node -> its INFO
        info: Any = self.client.info("server", target_nodes=self.client.PRIMARIES)
        if "run_id" in info:  # a cluster of one primary
            return str(info["run_id"])
        return ",".join(sorted(str(node["run_id"]) for node in info.values()))

    def fund_card_batch(
        self, script: Script, *, reseller_id: str, customer_id: str, batch_id: str,
        args: Sequence[Any],
    ) -> tuple[int, Any]:  # fmt: skip
        index = keys.batch_index(batch_id) if batch_id else None
        if index is not None and not self.client.set(
            index, f"{reseller_id}:{customer_id}", nx=True
        ):
            return CreateCardsCode.BATCH_TAKEN, b""
        code, detail = self.run(script, route(reseller_id), args)
        if int(code) != CreateCardsCode.DONE:
            if index is not None:
                self.client.delete(index)
            return int(code), detail
        self.client.incr(keys.GENERATION)
        return CreateCardsCode.DONE, detail

    def create_card_chunk(
        self, script: Script, *, reseller_id: str, customer_id: str, numbers: Sequence[str],
        args: Sequence[Any],
    ) -> tuple[int, Any]:  # fmt: skip
        owner = f"{reseller_id}:{customer_id}"
        pipe = self.client.pipeline(transaction=False)
        for number in numbers:
            pipe.set(keys.card_index(number), owner, nx=True)
        taken = pipe.execute()
        reserved = [n for n, ok in zip(numbers, taken, strict=True) if ok]
        clash = next((n for n, ok in zip(numbers, taken, strict=True) if not ok), None)

        def release() -> None:
            if reserved:
                pipe = self.client.pipeline(transaction=False)
                for number in reserved:
                    pipe.delete(keys.card_index(number))
                pipe.execute()

        if clash is not None:
            release()
            return CreateCardsCode.NUMBER_TAKEN, clash.encode()
        code, detail = self.run(script, route(reseller_id), args)
        if int(code) != CreateCardsCode.DONE:
            release()
            return int(code), detail
        self.client.incr(keys.GENERATION)
        return CreateCardsCode.DONE, detail


def topology_of(client: RedisLike) -> Topology:
    """The topology of a client (the one place that looks at its type)."""
    if isinstance(client, RedisCluster):
        return Cluster(client)
    return SingleServer(client)


def connect(settings: Settings, **kwargs: Any) -> Topology:
    """The configured Redis (RATER_REDIS_CLUSTER_NODES or RATER_REDIS_URL) as a Topology."""
    return topology_of(_connect(settings, **kwargs))
