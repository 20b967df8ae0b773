"""The ClickHouse adapter: connections (connection.py), migrations and the query executor
used by the analytics code (executor.py)."""

from rater.clickhouse.connection import (
    MIGRATIONS_DIR,
    Migration,
    client,
    migrate,
    migrations,
    ping,
)

__all__ = ["MIGRATIONS_DIR", "Migration", "client", "migrate", "migrations", "ping"]
