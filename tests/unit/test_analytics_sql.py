"""Pure checks of the analytics SQL pieces: literals, and that the migrations, the summary
descriptions and the row model agree with each other."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rater.analytics.summaries import SUMMARIES
from rater.billing.rows import COLUMNS, blank_row
from rater.clickhouse import MIGRATIONS_DIR
from rater.clickhouse.executor import literal, render


def _table_columns(sql: str, table: str) -> list[str]:
    body = re.search(rf"CREATE TABLE IF NOT EXISTS {table}\s*\((.*?)\)\s*ENGINE", sql, re.S)
    assert body, table
    names = []
    for raw in body[1].splitlines():
        line = raw.strip()
        if line and not line.startswith("--"):
            names.append(line.split()[0])
    return names


def test_literals() -> None:
    assert literal(5) == "5"
    assert literal("it's") == "'it\\'s'"
    assert literal("a\\b") == "'a\\\\b'"
    assert literal(date(2026, 11, 1)) == "toDate('2026-11-01')"
    assert literal(datetime(2026, 11, 1, 2, 3, 4)) == "toDateTime('2026-11-01 02:03:04', 'UTC')"
    cet = timezone(timedelta(hours=1))
    assert literal(datetime(2026, 11, 1, 2, 0, tzinfo=cet)) == (
        "toDateTime('2026-11-01 01:00:00', 'UTC')"
    )
    assert render("x = %(a)s AND y = %(b)s", {"a": "c1", "b": 2}) == "x = 'c1' AND y = 2"
    with pytest.raises(TypeError):
        literal(1.5)  # type: ignore[arg-type]


@given(st.text())
def test_string_literal_round_trips_through_clickhouse_escaping(text: str) -> None:
    quoted = literal(text)
    assert quoted.startswith("'")
    assert quoted.endswith("'")
    inner = quoted[1:-1]
    # undo ClickHouse's escaping: every quote in the body is escaped, so none can end it early
    assert re.sub(r"\\(.)", r"\1", inner, flags=re.S) == text
    assert not re.search(r"(?<!\\)(?:\\\\)*'", inner)


def test_row_model_matches_the_rated_cdrs_migration() -> None:
    sql = (MIGRATIONS_DIR / "001_rated_cdrs.sql").read_text()
    assert tuple(_table_columns(sql, "rated_cdrs")) == COLUMNS
    row = blank_row(cdr_id="x")
    assert row["sign"] == 1
    assert row["cdr_id"] == "x"
    with pytest.raises(KeyError):
        blank_row(nonsense=1)


def test_summary_descriptions_match_their_migrations() -> None:
    files = {p.name: p.read_text() for p in MIGRATIONS_DIR.glob("04*.sql")}
    for summary in SUMMARIES:
        sql = next(
            text for text in files.values() if f"TABLE IF NOT EXISTS {summary.table}" in text
        )
        columns = _table_columns(sql, summary.table)
        assert columns == [c.name for c in summary.keys + summary.values]
        view = sql.split(f"CREATE MATERIALIZED VIEW IF NOT EXISTS {summary.view}", 1)[1]
        flat = " ".join(view.split())
        for column in summary.keys + summary.values:
            if column.expression != column.name:
                assert f"{column.expression} AS {column.name}" in flat, column.name
        if summary.where:
            assert f"WHERE {summary.where}" in flat
        # no value alias may equal a rated_cdrs column (18.16 substitutes such aliases)
        assert not set(summary.value_names) & set(COLUMNS)


def test_portable_ddl_only() -> None:
    for path in MIGRATIONS_DIR.glob("04*.sql"):
        text = path.read_text()
        code = "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))
        for banned in ("LowCardinality", "DateTime64", "Map(", " TTL ", "CODEC", " OVER "):
            assert banned not in code, f"{path.name}: {banned}"


def test_day_bounds_are_a_half_open_utc_range() -> None:
    from rater.analytics.summaries import base_days

    cond, params = base_days(date(2026, 11, 1), date(2026, 11, 30))
    assert params == {
        "t_from": datetime(2026, 11, 1),
        "t_to": datetime(2026, 12, 1),
    }
    assert cond == "start_time >= %(t_from)s AND start_time < %(t_to)s"
