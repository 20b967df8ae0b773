"""One small query interface over ClickHouse for the analytics code: the native driver (the
18.16 server and any current server) or chDB (a current ClickHouse in-process, used by tests to
prove every statement also runs on a recent release).

Parameters are substituted here, client-side, with ClickHouse literal escaping, so the same
SQL text runs on both back-ends. Only str, int, date and datetime parameters are needed.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Protocol

from clickhouse_driver import Client

from rater.clickhouse import client as driver_client
from rater.errors import RaterError
from rater.settings import Settings

Param = str | int | date | datetime
Params = Mapping[str, Param]


class Executor(Protocol):
    """What analytics needs from a ClickHouse connection."""

    def rows(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        """Run a SELECT; rows as tuples of Python values (int, str, date, datetime)."""

    def table(
        self, sql: str, params: Params | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run a SELECT; (column names, rows)."""

    def command(self, sql: str, params: Params | None = None) -> None:
        """Run a statement that returns nothing (INSERT ... SELECT, DDL)."""

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert rows (one block: atomic per partition on a MergeTree)."""


def literal(value: Param) -> str:
    """A ClickHouse literal for a parameter value."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return f"toDateTime('{value:%Y-%m-%d %H:%M:%S}', 'UTC')"
    if isinstance(value, date):
        return f"toDate('{value.isoformat()}')"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        return f"'{escaped}'"
    raise TypeError(f"unsupported query parameter type {type(value).__name__}")


def render(sql: str, params: Params | None) -> str:
    """SQL with %(name)s placeholders replaced by literals."""
    if not params:
        return sql
    return sql % {name: literal(value) for name, value in params.items()}


class DriverExecutor:
    """clickhouse-driver (native protocol) on a client built with numpy=False, so rows are
    plain Python values and row inserts work."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> DriverExecutor:
        return cls(driver_client(settings, numpy=False))

    def rows(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.client.execute(render(sql, params))]

    def table(
        self, sql: str, params: Params | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        rows, columns = self.client.execute(render(sql, params), with_column_types=True)
        return [name for name, _type in columns], [tuple(row) for row in rows]

    def command(self, sql: str, params: Params | None = None) -> None:
        self.client.execute(render(sql, params))

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.client.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES", list(rows))


class ChdbExecutor:
    """chDB in-process session (a current ClickHouse release) on one database."""

    def __init__(self, path: str, database: str = "rater") -> None:
        # imported here: chDB is a test/dev dependency, untyped
        chdb_session: Any = importlib.import_module("chdb.session")
        self.session: Any = chdb_session.Session(path)
        self.database = database
        self._raw(f"CREATE DATABASE IF NOT EXISTS {database}")
        self._raw(f"USE {database}")

    def _raw(self, sql: str, fmt: str = "CSV") -> Any:
        try:
            return self.session.query(sql, fmt)
        except Exception as error:  # chDB raises a bare RuntimeError with the server's message
            raise RaterError(f"chDB: {error}\nin: {sql[:500]}") from error

    def rows(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        return self.table(sql, params)[1]

    def table(
        self, sql: str, params: Params | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        text = render(sql, params) + " SETTINGS output_format_json_quote_64bit_integers = 0"
        result = self._raw(text, "JSONCompact")
        raw = result.bytes()
        if not raw:
            return [], []
        payload = json.loads(raw)
        names = [column["name"] for column in payload["meta"]]
        types = [column["type"] for column in payload["meta"]]
        rows = [
            tuple(_from_json(value, kind) for value, kind in zip(row, types, strict=True))
            for row in payload["data"]
        ]
        return names, rows

    def command(self, sql: str, params: Params | None = None) -> None:
        self._raw(render(sql, params))

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        values = ",".join("(" + ",".join(_value_literal(v) for v in row) + ")" for row in rows)
        self._raw(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}")

    def migrate(self, statements: Iterable[str]) -> None:
        for statement in statements:
            self._raw(statement)


def _value_literal(value: Any) -> str:
    if isinstance(value, datetime):
        naive = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
        return f"'{naive:%Y-%m-%d %H:%M:%S}'"
    if isinstance(value, date):
        return f"'{value.isoformat()}'"
    return literal(value)


def _from_json(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "Date":
        return date.fromisoformat(value)
    if kind.startswith("DateTime"):
        return datetime.fromisoformat(value)
    if kind.startswith(("Int", "UInt")) and isinstance(value, str):
        return int(value)
    return value
