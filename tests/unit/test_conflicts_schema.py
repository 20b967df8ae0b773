"""cdr_conflicts: the store's columns are the migration's, and docs/ANALYSTS.md names each."""

from __future__ import annotations

import re

from rater.pipeline.conflicts import COLUMNS
from rater.settings import PROJECT_ROOT


def test_store_columns_are_the_migrations_and_documented() -> None:
    sql = (PROJECT_ROOT / "schemas" / "clickhouse" / "060_cdr_conflicts.sql").read_text()
    body = sql.split("(", 1)[1].split(")\nENGINE", 1)[0]
    declared = tuple(re.findall(r"^\s+(\w+) \w+", body, re.M))
    assert declared == COLUMNS
    doc = (PROJECT_ROOT / "docs" / "ANALYSTS.md").read_text()
    section = doc.split("### cdr_conflicts", 1)[1].split("\n### ", 1)[0]
    for column in COLUMNS:
        assert f"`{column}`" in section, column
