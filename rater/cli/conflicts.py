"""`rater conflicts list`: re-sent CDRs whose rating fields differ from the first copy's."""

from __future__ import annotations

from datetime import UTC, date, datetime

import click

from rater import clickhouse
from rater.cli._output import emit_json_lines, json_lines_option, table
from rater.cli.db_summaries import DAY
from rater.cli.grammar import Group
from rater.cli.main import settings_of
from rater.pipeline.conflicts import ConflictStore


@click.group(cls=Group)
def conflicts() -> None:
    """A switch sent the same (switch, cdr_id) again with another account, card, callee,
    billsec or time: the copy was not charged and is kept here for an operator to decide
    (docs/DESIGN.md section 4). The copy that was charged is the rated CDR of the same
    (switch, cdr_id); `first` names its message (partition@offset)."""


@conflicts.command("list")
@click.option(
    "--limit", type=click.IntRange(1), default=50, show_default=True, help="Copies listed at most."
)
@click.option("--switch", help="Only this switch's conflicts.")
@click.option("--since", type=DAY, help="Only conflicts found on or after this UTC day.")
@json_lines_option
@click.pass_context
def list_conflicts(
    ctx: click.Context, limit: int, switch: str | None, since: date | None, as_json: bool
) -> None:
    """The latest conflicting copies, newest first (--json: one object per copy)."""
    client = clickhouse.client(settings_of(ctx), numpy=False)
    start = datetime(since.year, since.month, since.day) if since else None
    rows = ConflictStore(client).recent(limit=limit, switch=switch, since=start)
    for row in rows:
        for column in ("start_time", "answer_time", "end_time", "detected_at"):
            row[column] = row[column].replace(tzinfo=UTC)  # stored as UTC (DESIGN.md section 1)
    if as_json:
        emit_json_lines(rows)
        return
    if not rows:
        click.echo("no conflicting re-sends")
        return
    headers = ["found", "switch", "cdr_id", "account", "card", "callee", "billsec", "start"]
    lines = [
        (
            r["detected_at"], r["switch"], r["cdr_id"], r["account"], r["card"] or "-",
            r["callee"], r["billsec"], r["start_time"], f"{r['partition']}@{r['offset']}",
            f"{r['first_partition']}@{r['first_offset']}",
        )
        for r in rows
    ]  # fmt: skip
    click.echo(table([*headers, "message", "first"], lines, numeric={6}))
