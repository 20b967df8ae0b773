"""`rater dlq show [--limit N] | replay`: the dead-letter topic."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from rater.cli._output import emit_json, json_option
from rater.cli.grammar import Group
from rater.cli.main import settings_of
from rater.escape import terminal
from rater.pipeline import deadletter as dead_letters
from rater.reasons import Kind
from rater.redis import connection as redis_client
from rater.stack import broker


@click.group(cls=Group)
def dlq() -> None:
    """Records that could not be stored as a CDR (bad JSON, missing or mistyped fields,
    impossible times, numbers that cannot be normalised), with where they came from and why."""


@dlq.command()
@click.option(
    "--limit",
    type=click.IntRange(0),
    default=20,
    show_default=True,
    help="Records to list (0: only the counts).",
)
@json_option
@click.pass_context
def show(ctx: click.Context, limit: int, as_json: bool) -> None:
    """Count dead letters by reason and list the latest ones.

    --json prints one object: the topic, the count, the counts by reason and the latest
    letters (origin, reason, and the record's value as text, undecodable bytes replaced).
    """
    settings = settings_of(ctx)
    broker.probe(settings)  # a clear error, not a consumer left half-started, when Kafka is down
    letters = asyncio.run(dead_letters.read_all(settings))
    by_reason: dict[str, int] = {}
    for letter in letters:
        kind = letter.reason_kind or _kind_shown(letter.reason)
        by_reason[kind] = by_reason.get(kind, 0) + 1
    latest = letters[-limit:] if limit else []
    if as_json:
        emit_json(
            {
                "topic": settings.topic_dlq,
                "count": len(letters),
                "by_reason": by_reason,
                "latest": [_letter_json(letter) for letter in latest],
            }
        )
        return
    click.echo(f"{len(letters)} dead letter(s) in {terminal(settings.topic_dlq)}")
    for kind, count in sorted(by_reason.items(), key=lambda kv: -kv[1]):
        click.echo(f"  {terminal(kind):<60} {count:>8}")
    for letter in latest:
        click.echo(describe_letter(letter))


def _letter_json(letter: dead_letters.DeadLetter) -> dict[str, Any]:
    return {
        "topic": letter.topic,
        "topic_id": letter.topic_id,
        "partition": letter.partition,
        "offset": letter.offset,
        "reason": letter.reason,
        "reason_kind": letter.reason_kind or _kind_shown(letter.reason),
        "value": letter.value.decode(errors="replace"),
    }


#: bytes of a record's value shown per dead letter
SHOWN_BYTES = 160


def describe_letter(letter: dead_letters.DeadLetter) -> str:
    """Where a dead letter came from, why, and the start of the record: two lines, whatever
    the record holds (control characters and escape sequences are shown, never sent)."""
    value = letter.value[:SHOWN_BYTES].decode(errors="replace")
    more = f" ... ({len(letter.value):,} bytes)" if len(letter.value) > SHOWN_BYTES else ""
    origin = f"{letter.topic}[{letter.partition}]@{letter.offset} ({letter.topic_id[:8]})"
    return f"{terminal(origin)}: {terminal(letter.reason)}\n    {terminal(value)}{more}"


@dlq.command()
@json_option
@click.pass_context
def replay(ctx: click.Context, as_json: bool) -> None:
    """Publish dead letters again to the cdrs topic (after fixing a switch's settings or the
    parser). Each dead letter is replayed once; those still invalid come back as new ones."""
    settings = settings_of(ctx)
    broker.probe(settings)
    client = redis_client.connect(settings)
    count = asyncio.run(dead_letters.replay(settings, client))
    if as_json:
        emit_json({"replayed": count, "topic": settings.topic_cdrs})
        return
    click.echo(terminal(f"replayed {count} record(s) to {settings.topic_cdrs}"))


def _kind_shown(text: str) -> str:
    """The kind a reason text starts with (rater/reasons.py writes 'kind: detail'), for letters
    read without their `reason_kind` header; "other" for texts of older versions."""
    for kind in Kind:
        if text == kind.value or text.startswith(f"{kind.value}: "):
            return kind.value
    return Kind.OTHER.value
