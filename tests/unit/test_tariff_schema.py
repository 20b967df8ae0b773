"""Migration 010 (tariff copy for analysts) also runs on a current ClickHouse (chDB in-process);
the integration suite applies it to 18.16 through the `settings` fixture."""

from __future__ import annotations

import tempfile

import pytest

from rater.clickhouse import MIGRATIONS_DIR, Migration


def test_tariff_tables_on_current_clickhouse() -> None:
    session_module = pytest.importorskip("chdb.session")
    migration = Migration(10, "010_tariffs", MIGRATIONS_DIR / "010_tariffs.sql")
    with tempfile.TemporaryDirectory() as path:
        db = session_module.Session(path)
        db.query("CREATE DATABASE IF NOT EXISTS tb")
        for statement in migration.statements():
            db.query(statement.replace("IF NOT EXISTS ", "IF NOT EXISTS tb.", 1))
        db.query(
            "INSERT INTO tb.tariff_rows VALUES "
            "('t', 2, '316', 'NL mobile', 45000, 10000, 60000, 30, 6, NULL, "
            "'2026-03-01 00:00:00', 3)"
        )
        db.query(
            "INSERT INTO tb.tariff_versions VALUES "
            "('t', 2, 'EUR', 4, 'up', '60/60', '2026-01-01 00:00:00', now(), 'deck.csv', 1)"
        )
        result = db.query(
            "SELECT v.version, r.prefix, r.rate, r.first_rate, toString(r.effective_to) "
            "FROM tb.tariff_rows AS r INNER JOIN tb.tariff_versions AS v "
            "ON r.name = v.name AND r.version = v.version",
            "TSV",
        )
        assert str(result).strip() == "2\t316\t45000\t60000\t2026-03-01 00:00:00"
        db.close()
