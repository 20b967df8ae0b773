"""Migration files: naming, ordering, statement splitting, and every statement on a current
ClickHouse (chDB, in-process) besides the 18.16 server the integration tests use."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rater import clickhouse
from rater.errors import MigrationError


def test_project_migrations_are_numbered_uniquely_and_in_order() -> None:
    found = clickhouse.migrations()
    assert found, "schemas/clickhouse holds no migration"
    numbers = [m.number for m in found]
    assert numbers == sorted(set(numbers))
    assert found[0].name == "001_rated_cdrs"
    for migration in found:
        assert migration.statements(), f"{migration.path.name} has no statement"


def test_no_migration_inserts_inline_values() -> None:
    # the native driver treats `INSERT ... VALUES (...)` as an insert awaiting a data block and
    # waits for it until the receive timeout: seed rows with INSERT ... SELECT instead
    for migration in clickhouse.migrations():
        for statement in migration.statements():
            inline = re.match(r"(?is)\s*INSERT\b.*\bVALUES\b", statement)
            assert not inline, f"{migration.path.name}: use INSERT ... SELECT, not VALUES"


def test_badly_named_migration_is_refused(tmp_path: Path) -> None:
    (tmp_path / "001_ok.sql").write_text("SELECT 1;\n")
    (tmp_path / "2_bad-name.sql").write_text("SELECT 1;\n")
    with pytest.raises(MigrationError, match=r"2_bad-name\.sql: migration files are named"):
        clickhouse.migrations(tmp_path)


def test_duplicate_number_is_refused(tmp_path: Path) -> None:
    (tmp_path / "003_one.sql").write_text("SELECT 1;\n")
    (tmp_path / "003_two.sql").write_text("SELECT 2;\n")
    with pytest.raises(MigrationError, match=r"number 003 also used by 003_one\.sql"):
        clickhouse.migrations(tmp_path)


def test_migrations_sort_by_number_not_by_name(tmp_path: Path) -> None:
    for name in ("010_c.sql", "002_b.sql", "001_a.sql"):
        (tmp_path / name).write_text("SELECT 1;\n")
    assert [m.name for m in clickhouse.migrations(tmp_path)] == ["001_a", "002_b", "010_c"]


def test_statements_split_on_line_end_semicolons_and_drop_comments(tmp_path: Path) -> None:
    path = tmp_path / "001_x.sql"
    path.write_text(
        "-- header comment; with a semicolon\n"
        "CREATE TABLE a (s String DEFAULT 'x;y')\nENGINE = Memory;\n"
        "\n"
        "  -- indented comment\n"
        "CREATE VIEW v AS SELECT s FROM a;"
    )
    statements = clickhouse.Migration(1, "001_x", path).statements()
    assert statements == [
        "CREATE TABLE a (s String DEFAULT 'x;y')\nENGINE = Memory",
        "CREATE VIEW v AS SELECT s FROM a",
    ]


# ------------------------------------------------------------------- current ClickHouse (chDB)
@pytest.fixture(scope="module")
def chdb_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    chdb_session_module = pytest.importorskip("chdb.session")
    session = chdb_session_module.Session(str(tmp_path_factory.mktemp("chdb")))
    session.query("CREATE DATABASE IF NOT EXISTS rater_current")
    session.query("USE rater_current")
    yield session
    session.close()


def test_every_migration_runs_on_current_clickhouse(chdb_session: Any) -> None:
    session = chdb_session
    for migration in clickhouse.migrations():
        for statement in migration.statements():
            try:
                session.query(statement)
            except Exception as error:
                pytest.fail(
                    f"{migration.path.name} fails on current ClickHouse: {error}\n{statement}"
                )
    # a second run is a no-op: every statement is IF NOT EXISTS (or otherwise re-runnable)
    for migration in clickhouse.migrations():
        for statement in migration.statements():
            if statement.lstrip().upper().startswith("CREATE"):
                session.query(statement)
    # and the tables take a row and give it back (materialized views included)
    session.query(
        "INSERT INTO rated_cdrs (cdr_id, switch, account, start_time, billsec, price, cost, sign)"
        " VALUES ('c1', 'sw1', 'cust-1', '2026-11-01 10:00:00', 61, 120000, 80000, 1)"
    )
    result = session.query("SELECT count(), sum(price * sign) FROM rated_cdrs", "CSV")
    assert result.bytes().decode().strip() == "1,120000"
