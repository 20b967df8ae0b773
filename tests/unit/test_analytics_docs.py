"""docs/ANALYSTS.md shows the example queries exactly as rater/analytics/queries.py runs them,
and documents every summary column and table."""

from __future__ import annotations

import re

from rater.analytics.queries import QUERIES
from rater.analytics.summaries import SUMMARIES
from rater.billing.audit import COLUMNS as AUDIT_COLUMNS
from rater.settings import PROJECT_ROOT

DOC = (PROJECT_ROOT / "docs" / "ANALYSTS.md").read_text()


def test_doc_shows_every_query_verbatim_in_order() -> None:
    sections = re.findall(
        r"^### (\d+)\. ([a-z0-9-]+)\n\n(.*?)\n\n```sql\n(.*?)\n```", DOC, re.S | re.M
    )
    assert [(int(n), name) for n, name, _, _ in sections] == [
        (i, q.name) for i, q in enumerate(QUERIES, start=1)
    ]
    for (_, _, question, sql), query in zip(sections, QUERIES, strict=True):
        assert question == query.question
        assert sql == query.sql


def test_doc_describes_every_summary_column_and_table() -> None:
    for summary in SUMMARIES:
        assert f"### {summary.table} (view `{summary.view}`)" in DOC
        for column in summary.keys + summary.values:
            assert column.name in DOC, column.name
    for column in AUDIT_COLUMNS:
        assert column in DOC, column
