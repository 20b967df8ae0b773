"""`rater ingest --follow` (rater/ingest/follow.py): a growing Master.csv is published like
`tail -F`, across rotation, and a restart from the state file neither skips nor re-sends."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from rater.ingest.files import records_of, split
from rater.ingest.follow import follow


def _line(n: int) -> bytes:
    return f'"cust1","1001","0201234567","x","""A"" <1>","PJSIP/{n}"'.encode()


class Follower:
    """follow() in the background, collecting what it sends."""

    def __init__(self, path: Path, state: Path) -> None:
        self.path, self.state = path, state
        self.sent: list[bytes] = []
        self.stop = asyncio.Event()

    async def send(self, records: list[bytes]) -> None:
        self.sent += records

    async def __aenter__(self) -> Follower:
        self.task = asyncio.create_task(
            follow(self.path, "csv", self.state, self.send, stop=self.stop, poll_s=0.02)
        )
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.stop.set()
        await self.task

    async def until(self, count: int, timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while len(self.sent) < count:
                await asyncio.sleep(0.01)


def _run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(body())


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


def test_follows_appends_rotation_and_restarts_without_gaps_or_repeats(tmp_path: Path) -> None:
    log = tmp_path / "Master.csv"
    state = tmp_path / "state.json"
    log.write_bytes(_line(1) + b"\n" + _line(2) + b"\n")

    async def first() -> None:
        async with Follower(log, state) as f:
            await f.until(2)
            _append(log, _line(3) + b"\n" + _line(4)[:10])  # a line still being written
            await f.until(3)
            await asyncio.sleep(0.1)
            assert f.sent == [_line(1), _line(2), _line(3)]
            _append(log, _line(4)[10:] + b"\n")
            await f.until(4)
            # rotation while following: renamed, a new file takes its name
            log.rename(tmp_path / "Master.csv.1")
            _append(tmp_path / "Master.csv.1", _line(5) + b"\n")  # written before the switch
            log.write_bytes(_line(6) + b"\n")
            await f.until(6)
            assert f.sent == [_line(n) for n in range(1, 7)]

    _run(first)

    # stopped; meanwhile the switch writes on and rotates again
    _append(log, _line(7) + b"\n")
    os.replace(log, tmp_path / "Master.csv.2")
    log.write_bytes(_line(8) + b"\n")

    async def second() -> None:
        async with Follower(log, state) as f:
            await f.until(2)
            await asyncio.sleep(0.1)
            assert f.sent == [_line(7), _line(8)]

    _run(second)


def test_a_file_truncated_in_place_is_read_again_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "Master.csv"
    state = tmp_path / "state.json"
    log.write_bytes(_line(1) + b"\n" + _line(2) + b"\n")

    async def body() -> None:
        async with Follower(log, state) as f:
            await f.until(2)
            log.write_bytes(_line(3) + b"\n")  # copytruncate: the same inode, shorter
            await f.until(3)
            assert f.sent[-1] == _line(3)

    _run(body)


def test_csv_records_may_hold_line_breaks_and_partial_lines_wait(tmp_path: Path) -> None:
    data = b'"a","multi\nline","b"\n"c","d"\n"e","unfinished'
    records, used = split(data, "csv", final=False)
    assert records == [b'"a","multi\nline","b"', b'"c","d"']
    assert data[used:] == b'"e","unfinished'
    path = tmp_path / "x.csv"
    path.write_bytes(data + b'"\n\n')
    assert list(records_of(path, "csv"))[-1] == b'"e","unfinished"'
