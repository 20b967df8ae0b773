"""Publishing a switch's records to the cdrs topic: key = the account, header = the switch.

Records go out with `send_batch`, one record batch per partition at a time (about 10x the rate
of one `send` per record, docs/DESIGN.md section 7); a key is mapped to its partition with
aiokafka's default partitioner function, so a switch's records land where a plain `send` would
put them. The account (the key) comes from the switch's format (rater/pipeline/formats/): a
record it cannot read is still published, without a key, and the worker dead-letters it with
the reason, so nothing is lost and the reason is where `rater dlq show` looks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from rater.kafka.batches import BatchSender
from rater.pipeline.decode import OTHER_LEG, InvalidRecord
from rater.pipeline.formats import FORMAT_HEADER, RATER, SWITCH_HEADER, context, format_named
from rater.tariffs.model import SwitchSettings

#: record batches handed to the producer and not yet acknowledged, at most
_MAX_PENDING = 64


class Progress(Protocol):
    def update(self, n: int) -> Any: ...


@dataclass
class Counts:
    records: int = 0
    unreadable: int = 0  # published without a key; the worker dead-letters them
    other_legs: int = 0
    first_problem: str = ""


@dataclass
class Sender:
    """Publishes records of one switch (in one format) to one topic."""

    producer: Any
    topic: str
    settings: SwitchSettings
    format_name: str = ""  # "" the switch's own format (no rater-format header)
    progress: Progress | None = None
    counts: Counts = field(default_factory=Counts)
    partitions: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.format = format_named(self.format_name or self.settings.format)
        self.context = context(self.settings, self.format_name)
        self._batches = BatchSender(self.producer, self.topic, max_pending=_MAX_PENDING)
        self.headers = [(SWITCH_HEADER, self.settings.name.encode())]
        if self.format_name:
            self.headers.append((FORMAT_HEADER, self.format_name.encode()))
        self._fast = self.format.name == RATER

    async def start(self) -> None:
        await self._batches.start()
        self.partitions = self._batches.partitions

    def key_of(self, value: bytes) -> bytes | None:
        """The account of a record, as the key; None when the format cannot read it."""
        try:
            fields = self.format.convert(value, self.context)
        except InvalidRecord as why:
            self.counts.unreadable += 1
            if not self.counts.first_problem:
                self.counts.first_problem = why.reason.text
            return None
        if fields is OTHER_LEG:
            self.counts.other_legs += 1
            return None
        account = fields.get("account")
        return account.encode() if isinstance(account, str) and account else None

    def partition(self, key: bytes | None) -> int:
        if key is None:
            return self.partitions[self.counts.records % len(self.partitions)]
        return self._batches.partition(key)

    async def send(self, values: Sequence[bytes]) -> None:
        """Hand these records to the producer (in order per partition)."""
        if not self.partitions:
            await self.start()
        by_partition: dict[int, list[tuple[bytes | None, bytes]]] = {}
        for value in values:
            key = self.key_of(value)
            by_partition.setdefault(self.partition(key), []).append((key, value))
            self.counts.records += 1
        for partition, items in by_partition.items():
            await self._batches.send(partition, items, self.headers)
        if self.progress is not None:
            self.progress.update(len(values))

    async def acknowledged(self) -> None:
        """Wait until the broker acknowledged everything sent so far."""
        await self._batches.acknowledged()
