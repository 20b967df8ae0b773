"""Following a growing CDR file (cdr_csv's Master.csv) like `tail -F`.

The position is kept in a state file: the file's device and inode and the offset after the
last record the broker acknowledged. It is written (atomically: a new file renamed over the
old) only after the acknowledgement, so a restart never skips a record; at most the records
between an acknowledgement and its state write are sent again, and the pipeline de-duplicates
those by (switch, cdr_id) (docs/DESIGN.md section 3).

Rotation: logrotate's default renames the file and the switch opens a new one. The follower
reads the old file to its end (a rename keeps the inode, so the file is found again in its
directory even after a restart), then starts the new one at 0. A file that shrinks in place
(copytruncate) is read again from 0; what was written between the last read and the copy is
lost to any follower, so rename rotation is the one to use (docs/SWITCHES.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from rater.ingest.files import split
from rater.logs import get_logger

log = get_logger(__name__)

#: bytes read at a time
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Position:
    device: int
    inode: int
    offset: int

    @classmethod
    def load(cls, path: Path) -> Position | None:
        try:
            data = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        return cls(int(data["device"]), int(data["inode"]), int(data["offset"]))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(orjson.dumps(self.__dict__))
        os.replace(tmp, path)


SendFn = Callable[[list[bytes]], Awaitable[None]]


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


def _find_rotated(path: Path, device: int, inode: int) -> Path | None:
    """The file with this inode in the followed file's directory (renamed by rotation)."""
    try:
        candidates = list(path.parent.iterdir())
    except OSError:
        return None
    for candidate in candidates:
        try:
            stat = candidate.stat()
        except OSError:
            continue
        if _identity(stat) == (device, inode) and candidate.is_file():
            return candidate
    return None


async def follow(
    path: Path,
    how: str,
    state: Path,
    send: SendFn,
    *,
    stop: asyncio.Event,
    poll_s: float = 0.5,
) -> int:
    """Publish the file's records as they are written, until `stop` is set; returns how many.

    `send` publishes a list of records and returns once the broker acknowledged them."""
    sent = 0
    position = Position.load(state)
    while not stop.is_set():
        identity = _open_identity(path)
        if identity is None:
            await _wait(stop, poll_s)
            continue
        if position is not None and (position.device, position.inode) != identity:
            # rotated (now, or while we were away): finish the old file, then the new from 0
            old = _find_rotated(path, position.device, position.inode)
            if old is not None:
                sent += await _drain(old, how, position, state, send, final=True)
            else:
                log.warning(
                    "the followed file was replaced and its old copy is gone", path=str(path)
                )
            position = None
        if position is None:
            position = Position(*identity, 0)
            position.save(state)
        if path.stat().st_size < position.offset:  # truncated in place (copytruncate)
            log.warning("the followed file shrank; reading it again from 0", path=str(path))
            position = Position(position.device, position.inode, 0)
        before = position.offset
        sent += await _drain(path, how, position, state, send, final=False)
        position = Position.load(state) or position
        if position.offset == before:
            await _wait(stop, poll_s)
    return sent


def _open_identity(path: Path) -> tuple[int, int] | None:
    try:
        return _identity(path.stat())
    except FileNotFoundError:
        return None


async def _drain(
    path: Path, how: str, position: Position, state: Path, send: SendFn, *, final: bool
) -> int:
    """Send the complete records after position.offset; the state follows each acknowledged
    chunk. `final`: the file is no longer written (rotated), so a last line without a newline
    is a record too."""
    sent = 0
    offset = position.offset
    with path.open("rb") as handle:
        if _identity(os.fstat(handle.fileno())) != (position.device, position.inode):
            return 0  # rotated since it was looked at: the loop finishes the old file first
        handle.seek(offset)
        carry = b""
        while True:
            chunk = handle.read(_CHUNK)
            data = carry + chunk
            at_end = len(chunk) < _CHUNK
            records, used = split(data, how, final=final and at_end)
            if records:
                await send(records)
                sent += len(records)
            offset += used
            Position(position.device, position.inode, offset).save(state)
            carry = data[used:]
            if at_end:
                return sent


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
