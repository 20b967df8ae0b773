"""rated_cdrs keeps every stored copy of a CDR (migration 050): a CDR stored twice stays two
rows after merges, `rater db check` names it, and the migration that re-keyed the table copies
the old rows once without feeding the ledger or the summaries a second time, even when it is
started again after an interruption."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from clickhouse_driver import Client

from rater import clickhouse
from rater.analytics.check import unbalanced
from rater.billing.rows import Row, blank_row, insert_rows
from rater.cli.main import cli
from rater.clickhouse.executor import DriverExecutor
from rater.settings import Settings

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 1, 10, 0, 0)


def _row(offset: int, *, cdr_id: str = "c1", revision: int = 0, sign: int = 1, price: int) -> Row:
    return blank_row(
        topic_id="t-1",
        partition=0,
        offset=offset,
        switch="sw1",
        cdr_id=cdr_id,
        account="cust-1",
        reseller="res-1",
        customer="cust-1",
        destination="Netherlands",
        currency="EUR",
        start_time=START,
        end_time=START,
        billsec=61,
        billable_seconds=61,
        price=price,
        cost=price // 2,
        margin=price - price // 2,
        outcome="rated",
        revision=revision,
        sign=sign,
        rated_at=START,
    )


@pytest.fixture
def fresh(settings: Settings, ch: Client) -> Iterator[Settings]:
    """Settings naming a database of its own, dropped afterwards."""
    other = settings.replace(clickhouse_database=f"t_id_{uuid.uuid4().hex[:8]}")
    yield other
    ch.execute(f"DROP DATABASE IF EXISTS {other.clickhouse_database}")


def _sums(ch: Client, database: str) -> tuple[int, int, int, int]:
    """(rows, net price, daily_summary revenue, ledger call entries) of a database."""
    rows, price = ch.execute(f"SELECT count(), sum(price * sign) FROM {database}.rated_cdrs")[0]
    revenue = ch.execute(f"SELECT sum(revenue) FROM {database}.daily_summary")[0][0]
    ledger = ch.execute(f"SELECT count() FROM {database}.ledger WHERE kind = 'call'")[0][0]
    return int(rows), int(price), int(revenue), int(ledger)


def test_a_cdr_stored_twice_stays_two_rows_after_merges(fresh: Settings, ch: Client) -> None:
    clickhouse.migrate(fresh)
    executor = DriverExecutor.from_settings(fresh)
    insert_rows(executor, [_row(10, price=1_000_000)])
    insert_rows(executor, [_row(900, price=1_000_000)])  # the same CDR at another offset
    db = fresh.clickhouse_database
    ch.execute(f"OPTIMIZE TABLE {db}.rated_cdrs FINAL")
    net = ch.execute(f"SELECT sum(sign), sum(price * sign) FROM {db}.rated_cdrs")[0]
    assert net == (2, 2_000_000)  # the old key (no offset) collapsed these into one row
    found = unbalanced(executor)
    assert [(u.switch, u.cdr_id, u.net, u.copies) for u in found] == [("sw1", "c1", 2, 2)]

    result = CliRunner().invoke(cli, ["--database", db, "db", "check"], catch_exceptions=False)
    assert result.exit_code == 1
    assert "switch=sw1 cdr_id=c1] net sign 2 over 2 stored copies" in result.output


def test_a_rerate_still_collapses_with_the_row_it_cancels(fresh: Settings, ch: Client) -> None:
    clickhouse.migrate(fresh)
    executor = DriverExecutor.from_settings(fresh)
    insert_rows(executor, [_row(10, price=1_000_000)])
    # re-rating: the cancelling copy of revision 0 and revision 1, both at the original offset
    insert_rows(
        executor,
        [_row(10, price=1_000_000, sign=-1), _row(10, revision=1, price=700_000)],
    )
    db = fresh.clickhouse_database
    ch.execute(f"OPTIMIZE TABLE {db}.rated_cdrs FINAL")
    assert ch.execute(f"SELECT count(), sum(price * sign) FROM {db}.rated_cdrs")[0] == (1, 700_000)
    assert unbalanced(executor) == []
    result = CliRunner().invoke(cli, ["--database", db, "db", "check"], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _until(tmp_path: Path, last: int) -> Path:
    """A folder holding the project's migrations numbered up to `last`."""
    folder = tmp_path / f"upto{last}"
    folder.mkdir()
    for migration in clickhouse.migrations():
        if migration.number <= last:
            shutil.copy(migration.path, folder / migration.path.name)
    return folder


def _old_rows(fresh: Settings) -> None:
    executor = DriverExecutor.from_settings(fresh)
    insert_rows(executor, [_row(10, price=1_000_000), _row(11, cdr_id="c2", price=400_000)])
    insert_rows(executor, [_row(11, cdr_id="c2", price=400_000, sign=-1),
                           _row(11, cdr_id="c2", revision=1, price=300_000)])  # fmt: skip


def test_migration_050_copies_old_rows_once_and_feeds_no_view_again(
    fresh: Settings, ch: Client, tmp_path: Path
) -> None:
    clickhouse.migrate(fresh, _until(tmp_path, 49))
    _old_rows(fresh)
    db = fresh.clickhouse_database
    before = _sums(ch, db)
    assert before == (4, 1_300_000, 1_300_000, 4 * 2)  # customer + reseller entry per row

    applied = clickhouse.migrate(fresh)
    assert "050_rated_cdrs_message_key" in applied
    assert _sums(ch, db) == before
    key = ch.execute(
        "SELECT engine_full FROM system.tables WHERE database = %(db)s AND name = 'rated_cdrs'",
        {"db": db},
    )[0][0]
    assert "offset" in key.split("ORDER BY")[1]
    tables = {r[0] for r in ch.execute(f"SHOW TABLES FROM {db}")}
    assert "rated_cdrs_until_050" not in tables
    # the views feed from the new table
    insert_rows(DriverExecutor.from_settings(fresh), [_row(12, cdr_id="c3", price=50_000)])
    assert _sums(ch, db) == (5, 1_350_000, 1_350_000, 10)


def test_migration_050_started_again_after_an_interruption(
    fresh: Settings, ch: Client, tmp_path: Path
) -> None:
    clickhouse.migrate(fresh, _until(tmp_path, 49))
    _old_rows(fresh)
    db = fresh.clickhouse_database
    before = _sums(ch, db)
    migration = next(m for m in clickhouse.migrations() if m.number == 50)
    statements = migration.statements()
    copy_at = next(i for i, s in enumerate(statements) if s.startswith("INSERT INTO rated_cdrs"))
    client = clickhouse.client(fresh, numpy=False)
    for statement in statements[: copy_at + 1]:  # killed right after the copy
        client.execute(statement)
    assert clickhouse.migrate(fresh, _until(tmp_path, 50)) == ["050_rated_cdrs_message_key"]
    assert _sums(ch, db) == before
