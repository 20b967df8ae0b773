"""`rater ingest`: publish a switch's CDR files to the cdrs topic (docs/SWITCHES.md)."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click

from rater import kafka
from rater.cli._output import emit_json, json_option, warn
from rater.cli.grammar import Command, info, quiet
from rater.cli.main import settings_of
from rater.errors import ConfigError
from rater.ingest.bridge import bridge
from rater.ingest.files import files_of, records_of, splitting
from rater.ingest.follow import follow
from rater.ingest.sender import Counts, Sender
from rater.pipeline.formats import FORMATS, format_named
from rater.redis.connection import connect
from rater.settings import Settings
from rater.switches.registry import SwitchRegistry
from rater.tariffs.model import SwitchSettings

#: records handed to the sender at a time
CHUNK = 5_000


@click.command("ingest", cls=Command)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--switch", "switch_name", required=True, help="The switch whose CDRs these are.")
@click.option(
    "--format",
    "format_name",
    type=click.Choice(list(FORMATS)),
    help="The records' format (default: the switch's format setting).",
)
@click.option("--follow", "follow_", is_flag=True, help="Tail a growing file like `tail -F`.")
@click.option(
    "--from-topic",
    metavar="TOPIC",
    help="Bridge the switch's own Kafka topic (cdr_kafka, Kamailio's kafka module) until stopped.",
)
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="--follow's position file (default: in the stack folder, per switch and file).",
)
@json_option
@click.pass_context
def ingest(
    ctx: click.Context,
    *,
    paths: tuple[Path, ...],
    switch_name: str,
    format_name: str | None,
    follow_: bool,
    from_topic: str | None,
    state: Path | None,
    as_json: bool,
) -> None:
    """Publish CDR files to the cdrs topic: Master.csv, directories of *.cdr.json, JSONL
    (or, with --from-topic, the records a switch publishes to a Kafka topic of its own).

    Each record carries the switch's name (header rater-switch) and its account as the key;
    the workers read it with the switch's format (rater switch set NAME --format ...).
    Publishing a file twice charges nothing twice: CDRs are de-duplicated by (switch, cdr_id).
    --json prints the counts as one object when publishing ends.
    """
    settings = settings_of(ctx)
    switch = SwitchRegistry(connect(settings)).get(switch_name)
    fmt = format_named(format_name or switch.format)
    if from_topic is not None:
        if paths or follow_:
            raise click.UsageError("--from-topic takes no files and no --follow")
        counts = asyncio.run(_bridge(settings, switch, format_name or "", from_topic))
    elif not paths:
        raise click.UsageError("name files or directories, or --from-topic TOPIC")
    elif follow_:
        if len(paths) != 1 or not paths[0].is_file():
            raise click.UsageError("--follow takes one file (a growing Master.csv)")
        if fmt.files == "document":
            raise click.UsageError(f"--follow reads line formats, not {fmt.name} documents")
        where = state or _state_path(settings, switch_name, paths[0])
        counts = asyncio.run(_follow(settings, switch, format_name or "", paths[0], where))
    else:
        counts = asyncio.run(_publish(settings, switch, format_name or "", list(paths)))
    if as_json:
        emit_json(
            {
                "switch": switch_name,
                "published": counts.records,
                "other_legs": counts.other_legs,
                "unreadable": counts.unreadable,
                "first_problem": counts.first_problem or None,
            }
        )
        return
    _summary(counts, switch_name)


def _state_path(settings: Settings, switch: str, path: Path) -> Path:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in switch)
    return Path(settings.stack_dir) / "ingest" / f"{safe}-{digest}.json"


def _bar(total: int | None) -> Any:
    """A tqdm progress bar on stderr (only on a terminal, and not with --quiet)."""
    if not sys.stderr.isatty() or quiet():
        return None
    from tqdm import tqdm  # noqa: PLC0415 - keep `rater --help` light

    return tqdm(total=total, unit=" records", unit_scale=True, file=sys.stderr, leave=False)


async def _publish(
    settings: Settings, switch: SwitchSettings, format_name: str, paths: list[Path]
) -> Counts:
    files = files_of(paths)
    if not files:
        raise ConfigError("no CDR files found (*.json, *.jsonl, *.ndjson, *.csv)")
    await kafka.ensure_topics(settings)
    producer = kafka.producer(settings)
    await producer.start()
    bar = _bar(None)
    started = time.perf_counter()
    try:
        sender = Sender(producer, settings.topic_cdrs, switch, format_name, progress=bar)
        how_default = sender.format.files
        for path in files:
            chunk: list[bytes] = []
            for record in records_of(path, splitting(path, how_default)):
                chunk.append(record)
                if len(chunk) >= CHUNK:
                    await sender.send(chunk)
                    chunk = []
            if chunk:
                await sender.send(chunk)
        await sender.acknowledged()
    finally:
        if bar is not None:
            bar.close()
        await producer.stop()
    seconds = time.perf_counter() - started
    info(f"published {sender.counts.records} records from {len(files)} files in {seconds:.1f} s")
    return sender.counts


async def _follow(
    settings: Settings, switch: SwitchSettings, format_name: str, path: Path, state: Path
) -> Counts:
    await kafka.ensure_topics(settings)
    producer = kafka.producer(settings)
    await producer.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    bar = _bar(None)
    try:
        sender = Sender(producer, settings.topic_cdrs, switch, format_name, progress=bar)

        async def send(records: list[bytes]) -> None:
            for start in range(0, len(records), CHUNK):
                await sender.send(records[start : start + CHUNK])
            await sender.acknowledged()

        info(f"following {path} (state in {state}); Ctrl-C stops")
        await follow(path, splitting(path, sender.format.files), state, send, stop=stop)
    finally:
        if bar is not None:
            bar.close()
        await producer.stop()
    return sender.counts


async def _bridge(
    settings: Settings, switch: SwitchSettings, format_name: str, topic: str
) -> Counts:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    info(f"bridging topic {topic} into {settings.topic_cdrs}; Ctrl-C stops")
    return await bridge(settings, switch, format_name, topic, stop=stop, progress=_bar(None))


def _summary(counts: Counts, switch: str) -> None:
    if counts.other_legs:
        click.echo(f"{counts.other_legs} records are other legs of calls (counted, not billed)")
    if counts.unreadable:
        warn(
            f"{counts.unreadable} records cannot be read with switch {switch!r}'s settings "
            f"(first: {counts.first_problem}); the workers dead-letter them with the reason "
            "(rater dlq show; rater dlq replay after fixing the settings)"
        )
    click.echo(f"{counts.records} records published")
