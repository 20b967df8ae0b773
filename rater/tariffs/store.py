"""Tariff versions in Redis (the live store every rater process reads) with a ClickHouse copy.

Redis keys (rater/redis/keys.py; NAME is the table name in key form, keys.name, so a name with
spaces, braces or '%' still gives one hash tag and one cluster slot per table):

    tariff:{NAME}:index     hash  version -> JSON header (currency, steps, effective_from, ...)
    tariff:{NAME}:v:N       string  the version, codec.encode (orjson columns, zlib)
    tariff:{NAME}:owner     string  the reseller id owning the table; absent: the operator's
    tariff:names            set   every table name (as given)
    tariff:generation       counter bumped on every save and delete: loaders poll it cheaply

Versions (docs/DESIGN.md section 2): the first is in force from the beginning of time; a later
one from `effective_from`, default the moment of saving. A version in another currency than
the table's earlier ones is refused. Saved versions are never changed.

Owners (docs/DESIGN.md section 1, "Tariff owners"): a table belongs to the operator or to one
reseller, fixed by its first version. A reseller sees its own tables and the buy table assigned
to it, never another reseller's (`may_see`); the account API assigns a customer only a table
its reseller may see (rater/accounts/tariff_check.py), and the portal lists only those.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
from clickhouse_driver import errors as ch_errors

from rater.clickhouse import client
from rater.errors import NotFound, ServiceUnavailable, TariffError
from rater.logs import get_logger
from rater.redis import keys, legacy
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.tariffs import codec
from rater.tariffs.model import TariffTable

log = get_logger(__name__)

_SAVE_ATTEMPTS = 5

#: the owner of the operator's tables (no owner key)
OPERATOR = ""


def may_see(name: str, owner: str, *, reseller_id: str, buy_tariff: str) -> bool:
    """Whether a reseller may see (list, read, derive from, assign) the table `name` owned by
    `owner`: its own tables, and the buy table assigned to it."""
    return (owner != OPERATOR and owner == reseller_id) or name == buy_tariff


@dataclass(frozen=True)
class TariffInfo:
    """A version's header without its rows (for listings)."""

    table: TariffTable  # rows empty
    row_count: int


class TariffStore:
    """Save, list and load tariff versions. `clickhouse=False` skips the analysts' copy."""

    def __init__(self, redis_client: RedisLike, settings: Settings, *, clickhouse: bool = True):
        self.redis = redis_client
        self.settings = settings
        self.clickhouse = clickhouse
        for name in legacy.move_tariff_keys(redis_client):
            log.info("tariff keys moved to the encoded name", tariff=name)

    # ------------------------------------------------------------------ writing
    def save(
        self,
        table: TariffTable,
        *,
        effective_from: datetime | None = None,
        now: datetime | None = None,
        owner: str | None = None,
    ) -> TariffTable:
        """Store `table` as the next version of its name and return it as saved.

        The version number, effective_from (None for version 1) and created_at are assigned
        here. TariffError when the currency differs from the earlier versions', or when the
        new version would take effect before the latest one.

        `owner`: a reseller id, or OPERATOR. A new table gets it (None: the operator's); a new
        version of an existing table must name the table's owner (None: whoever owns it, as
        the operator may), else TariffError without saying who owns it.
        """
        if not table.name.strip():
            raise TariffError("a tariff table needs a name")
        now = _utc(now) or datetime.now(UTC)
        wanted = _utc(effective_from) or table.effective_from
        key = keys.tariff_index(table.name)
        owner_key = keys.tariff_owner(table.name)
        for _ in range(_SAVE_ATTEMPTS):
            # MULTI on the table's slot (on a cluster too: its keys share one hash tag)
            with self.redis.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)
                    infos = _infos(pipe.hgetall(key))
                    _check_owner(table.name, infos, _text(pipe.get(owner_key)), owner)
                    saved = self._next_version(table, infos, wanted, now)
                    blob = codec.encode(saved)
                    if self.clickhouse:
                        self._copy_rows(saved)  # before Redis: a failure here saves nothing
                    pipe.multi()
                    pipe.set(keys.tariff_version(saved.name, saved.version), blob)
                    pipe.hset(key, str(saved.version), orjson.dumps(codec.meta_of(saved)))
                    if not infos and owner:
                        pipe.set(owner_key, owner)
                    pipe.execute()
                except redis.WatchError:
                    continue  # another import of the same table won the version number
            # other slots than the table's (on a cluster): after its version is in place, so
            # loaders see the version a moment later, never a name without a version
            self.redis.sadd(keys.TARIFFS, saved.name)
            self.redis.incr(keys.TARIFFS_GENERATION)
            if self.clickhouse:
                self._copy_version(saved)
            log.info(
                "tariff saved", tariff=saved.key, rows=len(saved.rows), bytes=len(blob),
                effective_from=str(saved.effective_from),
            )  # fmt: skip
            return saved
        raise TariffError(f"tariff {table.name!r}: too many concurrent saves, try again")

    @staticmethod
    def _next_version(
        table: TariffTable, infos: list[TariffInfo], wanted: datetime | None, now: datetime
    ) -> TariffTable:
        if not infos:
            return replace(table, version=1, effective_from=None, created_at=now)
        latest = infos[-1].table
        if latest.currency != table.currency:
            raise TariffError(
                f"tariff {table.name!r} is in {latest.currency}; "
                f"a version in {table.currency} is refused"
            )
        effective = wanted or now
        if latest.effective_from is not None and effective < latest.effective_from:
            raise TariffError(
                f"tariff {table.name!r}: version {latest.version + 1} would take effect at "
                f"{effective:%Y-%m-%d %H:%M:%S}, before version {latest.version} "
                f"({latest.effective_from:%Y-%m-%d %H:%M:%S})"
            )
        return replace(table, version=latest.version + 1, effective_from=effective, created_at=now)

    def delete(self, name: str) -> int:
        """Remove every version of a table from Redis (the ClickHouse copy stays as history)."""
        infos = self.infos(name)
        if not infos:
            raise NotFound(f"no tariff table named {name!r}")
        versions = [keys.tariff_version(name, info.table.version) for info in infos]
        self.redis.delete(*versions, keys.tariff_index(name), keys.tariff_owner(name))
        self.redis.srem(keys.TARIFFS, name)
        self.redis.incr(keys.TARIFFS_GENERATION)
        return len(infos)

    # ------------------------------------------------------------------ reading
    def generation(self) -> int:
        """A counter that changes whenever any table is saved or deleted."""
        value: Any = self.redis.get(keys.TARIFFS_GENERATION)
        return int(value) if value is not None else 0

    def names(self) -> list[str]:
        members: Any = self.redis.smembers(keys.TARIFFS)
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    def owner(self, name: str) -> str:
        """The reseller id owning a table, or OPERATOR (also for an unknown name)."""
        return _text(self.redis.get(keys.tariff_owner(name)))

    def owners(self, names: list[str]) -> dict[str, str]:
        """name -> owner for many tables in one round trip (one GET each, pipelined: the keys
        are in as many cluster slots as tables)."""
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.get(keys.tariff_owner(name))
        return {name: _text(raw) for name, raw in zip(names, pipe.execute(), strict=True)}

    def visible(self, reseller_id: str, buy_tariff: str) -> list[str]:
        """The names of the tables a reseller may see (may_see), sorted."""
        names = self.names()
        owners = self.owners(names)
        return [
            n for n in names
            if may_see(n, owners[n], reseller_id=reseller_id, buy_tariff=buy_tariff)
        ]  # fmt: skip

    def infos(self, name: str) -> list[TariffInfo]:
        """Headers of every version of a table, oldest first (empty when unknown)."""
        return _infos(self.redis.hgetall(keys.tariff_index(name)))

    def get(self, name: str, version: int | None = None) -> TariffTable:
        """One version (the latest when None); NotFound when there is no such table/version."""
        if version is None:
            infos = self.infos(name)
            if not infos:
                raise NotFound(f"no tariff table named {name!r}")
            version = infos[-1].table.version
        blob: Any = self.redis.get(keys.tariff_version(name, version))
        if blob is None:
            known = [i.table.version for i in self.infos(name)]
            if not known:
                raise NotFound(f"no tariff table named {name!r}")
            raise NotFound(f"tariff {name!r} has no version {version} (versions: {known})")
        return codec.decode(blob)

    def versions(self, name: str) -> list[TariffTable]:
        """Every version of a table with its rows, oldest first."""
        return [self.get(name, info.table.version) for info in self.infos(name)]

    # ------------------------------------------------------------------ ClickHouse copy
    def _client(self) -> Any:
        # Nullable columns go in as plain lists, not numpy arrays
        return client(self.settings, numpy=False)

    def _copy_rows(self, table: TariffTable) -> None:
        try:
            self._insert_rows(table)
        except (ch_errors.Error, OSError, EOFError) as error:
            raise ServiceUnavailable(
                f"tariff {table.name!r} not saved: its copy to ClickHouse at "
                f"{self.settings.clickhouse_host}:{self.settings.clickhouse_port} failed: {error}"
            ) from error

    def _insert_rows(self, table: TariffTable) -> None:
        rows = table.rows
        steps = [row.steps or table.steps for row in rows]
        columns = [
            [table.name] * len(rows),
            [table.version] * len(rows),
            [row.prefix for row in rows],
            [row.destination for row in rows],
            [row.rate for row in rows],
            [row.connect_fee for row in rows],
            [row.rate if row.first_rate is None else row.first_rate for row in rows],
            [s.minimum for s in steps],
            [s.increment for s in steps],
            [_naive(row.effective_from) for row in rows],
            [_naive(row.effective_to) for row in rows],
            [row.line for row in rows],
        ]
        self._client().execute(
            "INSERT INTO tariff_rows (name, version, prefix, destination, rate, connect_fee, "
            "first_rate, steps_minimum, steps_increment, effective_from, effective_to, line) "
            "VALUES",
            columns,
            columnar=True,
        )

    def _copy_version(self, table: TariffTable) -> None:
        self._client().execute(
            "INSERT INTO tariff_versions (name, version, currency, decimals, rounding, steps, "
            "effective_from, created_at, source, row_count) VALUES",
            [
                (
                    table.name,
                    table.version,
                    table.currency,
                    table.decimals,
                    table.rounding.value,
                    str(table.steps),
                    _naive(table.effective_from),
                    _naive(table.created_at),
                    table.source,
                    len(table.rows),
                )
            ],
        )


def _infos(raw: Any) -> list[TariffInfo]:
    infos = []
    for value in raw.values():
        meta = orjson.loads(value)
        infos.append(TariffInfo(codec.table_of_meta(meta), int(meta["rows"])))
    return sorted(infos, key=lambda info: info.table.version)


def _text(raw: Any) -> str:
    if raw is None:
        return OPERATOR
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _check_owner(name: str, infos: list[TariffInfo], current: str, wanted: str | None) -> None:
    """A new version of an existing table only by its owner (or the operator: None)."""
    if not infos or wanted is None or wanted == current:
        return
    raise TariffError(
        f"a tariff table named {name!r} exists and is not yours to change; choose another name"
    )


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _naive(value: datetime | None) -> datetime | None:
    """ClickHouse DateTime columns take naive UTC datetimes (whole seconds)."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None, microsecond=0)
