"""ClickHouse (the stack's 18.16 server): migrations apply, re-run safely, and the migrated
tables take inserts and answer selects."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from clickhouse_driver import Client

from rater import clickhouse
from rater.errors import MigrationError
from rater.settings import Settings

pytestmark = pytest.mark.integration


def test_session_database_holds_every_migration(settings: Settings, ch: Client) -> None:
    recorded = ch.execute("SELECT number, name FROM schema_migrations ORDER BY number")
    expected = [(m.number, m.name) for m in clickhouse.migrations()]
    assert recorded == expected
    tables = {row[0] for row in ch.execute("SHOW TABLES")}
    assert {"rated_cdrs", "ledger", "schema_migrations"} <= tables
    assert clickhouse.migrate(settings) == []  # nothing left to apply


def test_migration_from_a_folder_applies_once(
    settings: Settings, ch: Client, tmp_path: Path
) -> None:
    other = settings.replace(clickhouse_database=f"{settings.clickhouse_database}_m")
    (tmp_path / "001_calls.sql").write_text(
        "-- a comment line\n"
        "CREATE TABLE IF NOT EXISTS calls (id UInt32, price Int64)\n"
        "ENGINE = MergeTree ORDER BY id;\n"
    )
    try:
        assert clickhouse.migrate(other, tmp_path) == ["001_calls"]
        (tmp_path / "002_calls_view.sql").write_text(
            "CREATE VIEW IF NOT EXISTS calls_total AS SELECT sum(price) AS total FROM calls;\n"
            # seed rows with INSERT ... SELECT: an inline INSERT ... VALUES makes the native
            # driver wait for a data block that never comes
            "INSERT INTO calls SELECT number + 1, (number * 6 + 1) * 250000\n"
            "FROM system.numbers LIMIT 2;\n"
        )
        assert clickhouse.migrate(other, tmp_path) == ["002_calls_view"]
        assert clickhouse.migrate(other, tmp_path) == []  # re-run: the INSERT is not repeated
        rows = ch.execute(f"SELECT total FROM {other.clickhouse_database}.calls_total")
        assert rows == [(2_000_000,)]
    finally:
        ch.execute(f"DROP DATABASE IF EXISTS {other.clickhouse_database}")


def test_failing_migration_names_its_file_and_is_not_recorded(
    settings: Settings, ch: Client, tmp_path: Path
) -> None:
    other = settings.replace(clickhouse_database=f"{settings.clickhouse_database}_f")
    (tmp_path / "001_broken.sql").write_text("CREATE TABLE nope (x UInt8) ENGINE = NoSuchEngine;\n")
    try:
        with pytest.raises(MigrationError, match=r"001_broken\.sql"):
            clickhouse.migrate(other, tmp_path)
        assert ch.execute(f"SELECT count() FROM {other.clickhouse_database}.schema_migrations") == [
            (0,)
        ]
    finally:
        ch.execute(f"DROP DATABASE IF EXISTS {other.clickhouse_database}")


def test_rated_cdrs_columnar_insert_and_select(ch: Client, ch_numpy: Client) -> None:
    n = 1000
    described = ch.execute("DESCRIBE TABLE rated_cdrs")
    columns = {row[0]: row[1] for row in described}
    start = datetime(2026, 11, 1, 12, 0, 0)
    data: dict[str, object] = {}
    for name, type_ in columns.items():
        if type_ == "String":
            data[name] = np.array([f"{name}-{i % 7}" for i in range(n)], dtype=object)
        elif type_ == "DateTime":
            data[name] = np.array([np.datetime64(start) + np.timedelta64(i, "s") for i in range(n)])
        elif type_.startswith(("Int", "UInt")):
            data[name] = np.arange(n, dtype=type_.lower())
    data["sign"] = np.ones(n, dtype=np.int8)
    data["price"] = np.full(n, 12_345, dtype=np.int64)  # 0.012345 EUR each, in micro-units
    ch_numpy.execute(
        f"INSERT INTO rated_cdrs ({', '.join(columns)}) VALUES",
        [data[name] for name in columns],
        columnar=True,
    )
    total = ch.execute("SELECT count(), sum(price * sign), min(start_time) FROM rated_cdrs")
    assert total == [(n, n * 12_345, start)]
    by_account = ch.execute(
        "SELECT account, sum(price * sign) FROM rated_cdrs GROUP BY account ORDER BY account"
    )
    assert len(by_account) == 7
    assert sum(row[1] for row in by_account) == n * 12_345
