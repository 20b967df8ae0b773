"""The parts of a worker's liveness that need no service: the checkpoint's order, the
watchdog's verdicts, which errors are retried, the progress line and the supervisor's words.

The pipeline stages here are stand-ins recording calls (rater/pipeline/checkpoint.py needs only
their order and their results); the services themselves are exercised in
tests/integration/test_pipeline_liveness.py and test_pipeline_run_cli.py.
"""

from __future__ import annotations

import asyncio
import io
import logging
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_lib
import structlog
from aiokafka.errors import CommitFailedError, KafkaConnectionError
from clickhouse_driver import errors as ch_errors
from structlog.testing import capture_logs

from rater.billing.recovery import Repair
from rater.errors import CdrError, ServiceUnavailable
from rater.pipeline.checkpoint import Checkpoint, Checkpointer
from rater.pipeline.consume import BrokerTimeout
from rater.pipeline.flow import BatchReport
from rater.pipeline.progress import Progress, Reporter, WorkerSummary
from rater.pipeline.supervisor import exit_text
from rater.pipeline.watchdog import EXIT_STALLED, Health, Watchdog
from rater.pipeline.worker import RedisServerChanged, Worker, WorkerFailed, service_of
from rater.settings import Settings


class _Prepared:
    def __init__(self, batch: int, rows: int = 10) -> None:
        self.batch = batch
        self.rows = [None] * rows
        self.report = BatchReport(records=rows)


class _Stages:
    """Records the order of the checkpoint's steps; `fail_store` errors before succeeding."""

    def __init__(self, calls: list[str], *, fail_store: int = 0, stall: bool = False) -> None:
        self.calls, self.fail_store, self.stall = calls, fail_store, stall

    async def store_group(self, batches: list[_Prepared]) -> int:
        self.calls.append(f"store {' '.join(str(p.batch) for p in batches)}")
        if self.fail_store:
            self.fail_store -= 1
            raise ch_errors.NetworkError("connection refused")
        await asyncio.sleep(0.01)
        return sum(len(p.rows) for p in batches)

    async def dead_letter(self, prepared: _Prepared) -> int:
        self.calls.append(f"dead-letter {prepared.batch}")
        return 0

    def fault(self, point: str, batch: int) -> None:
        pass

    def stalls(self, point: str, batch: int) -> bool:
        return self.stall

    def account(self, prepared: _Prepared) -> BatchReport:
        return prepared.report


class _Committer:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    async def commit(self, next_offsets: dict[int, int]) -> bool:
        self.calls.append(f"commit {next_offsets}")
        return True


async def _retry(what: str, step: Any) -> Any:
    """The worker's policy in miniature: a service error is tried again at once."""
    while True:
        try:
            return await step()
        except Exception as error:
            if service_of(error) is None:
                raise


def _checkpointer(
    calls: list[str], *, insert_rows: int = 1, insert_wait_s: float = 0.25, **stages: Any
) -> tuple[Checkpointer, list[Checkpoint]]:
    """A checkpointer on stand-ins; by default every batch is its own group."""
    done: list[Checkpoint] = []
    checkpointer = Checkpointer(
        _Stages(calls, **stages),  # type: ignore[arg-type]
        _Committer(calls),
        _retry,
        lambda checkpoint, _report: done.append(checkpoint),
        insert_rows=insert_rows,
        insert_wait_s=insert_wait_s,
    )
    return checkpointer, done


def test_a_checkpoint_stores_then_dead_letters_then_commits() -> None:
    calls: list[str] = []

    async def scenario() -> list[Checkpoint]:
        checkpointer, done = _checkpointer(calls, fail_store=2)
        await checkpointer.submit(Checkpoint(_Prepared(1), {0: 11}))  # type: ignore[arg-type]
        await checkpointer.drain()
        return done

    done = asyncio.run(scenario())
    # the store failed twice on a service error and was done again; the commit waited for it
    assert calls == ["store 1", "store 1", "store 1", "dead-letter 1", "commit {0: 11}"]
    assert [c.committed for c in done] == [True]


def test_checkpoints_commit_in_the_order_their_batches_were_submitted() -> None:
    calls: list[str] = []

    async def scenario() -> None:
        checkpointer, _ = _checkpointer(calls)
        for batch in (1, 2, 3):
            checkpoint = Checkpoint(_Prepared(batch), {0: batch * 10})  # type: ignore[arg-type]
            await checkpointer.submit(checkpoint)
        await checkpointer.drain()

    asyncio.run(scenario())
    # one checkpoint in flight at a time: a batch's store starts after the previous commit
    assert calls == [
        step for batch in (1, 2, 3)
        for step in (f"store {batch}", f"dead-letter {batch}", f"commit {{0: {batch * 10}}}")
    ]  # fmt: skip


def test_batches_gather_into_one_insert_and_one_commit_after_it() -> None:
    calls: list[str] = []

    async def scenario() -> list[Checkpoint]:
        checkpointer, done = _checkpointer(calls, insert_rows=30, insert_wait_s=5.0)
        for batch, offsets in ((1, {0: 11, 1: 5}), (2, {0: 20}), (3, {1: 9})):
            await checkpointer.submit(Checkpoint(_Prepared(batch), offsets))  # type: ignore[arg-type]
        await asyncio.sleep(0)  # 30 rows: the group goes without waiting for its time bound
        while checkpointer.busy:
            await asyncio.sleep(0.01)
        return done

    done = asyncio.run(scenario())
    # one insert for the three batches, their rejects, then one commit of the highest offsets
    assert calls == ["store 1 2 3", "dead-letter 1", "dead-letter 2", "dead-letter 3",
                     "commit {0: 20, 1: 9}"]  # fmt: skip
    assert [c.committed for c in done] == [True, True, True]


def test_a_thin_stream_waits_the_time_bound_at_most() -> None:
    calls: list[str] = []

    async def scenario() -> float:
        checkpointer, _ = _checkpointer(calls, insert_rows=20_000, insert_wait_s=0.2)
        started = time.monotonic()
        await checkpointer.submit(Checkpoint(_Prepared(1), {0: 11}))  # type: ignore[arg-type]
        while checkpointer.busy:
            await asyncio.sleep(0.01)
        return time.monotonic() - started

    waited = asyncio.run(scenario())
    assert calls == ["store 1", "dead-letter 1", "commit {0: 11}"]
    assert 0.18 <= waited < 5.0  # the bound, give or take a loaded machine


def test_a_drain_stores_what_gathers_at_once() -> None:
    calls: list[str] = []

    async def scenario() -> float:
        checkpointer, _ = _checkpointer(calls, insert_rows=20_000, insert_wait_s=30.0)
        await checkpointer.submit(Checkpoint(_Prepared(1), {0: 11}))  # type: ignore[arg-type]
        await checkpointer.submit(Checkpoint(_Prepared(2), {0: 12}))  # type: ignore[arg-type]
        started = time.monotonic()
        await asyncio.wait_for(checkpointer.drain(), 10.0)
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 5.0
    assert calls == ["store 1 2", "dead-letter 1", "dead-letter 2", "commit {0: 12}"]


def test_a_full_gathering_group_waits_for_the_one_in_flight() -> None:
    calls: list[str] = []

    async def scenario() -> None:
        checkpointer, _ = _checkpointer(calls, insert_rows=20, insert_wait_s=5.0)
        for batch in range(1, 7):
            await checkpointer.submit(Checkpoint(_Prepared(batch), {0: batch}))  # type: ignore[arg-type]
            calls.append(f"submitted {batch}")
        await checkpointer.drain()

    asyncio.run(scenario())
    stores = [c for c in calls if c.startswith("store")]
    assert stores == ["store 1 2", "store 3 4", "store 5 6"]
    # batch 5 was taken only after the group of 1 and 2 committed (bounded memory)
    assert calls.index("submitted 5") > calls.index("commit {0: 2}")
    assert calls[-1] == "commit {0: 6}"


def test_an_abandoned_checkpoint_commits_nothing() -> None:
    calls: list[str] = []

    async def scenario() -> bool:
        checkpointer, _ = _checkpointer(calls, stall=True)
        await checkpointer.submit(Checkpoint(_Prepared(1), {0: 11}))  # type: ignore[arg-type]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(checkpointer.drain(), 0.2)  # the bound does not cancel it
        assert checkpointer.busy
        abandoned = checkpointer.abandon()
        await asyncio.sleep(0.05)
        await checkpointer.drain()  # nothing in flight any more
        return abandoned

    assert asyncio.run(scenario())
    assert calls == ["store 1", "dead-letter 1"]


def test_a_non_retriable_error_of_a_checkpoint_reaches_the_worker() -> None:
    class Broken(_Stages):
        async def dead_letter(self, prepared: _Prepared) -> int:
            raise CdrError("a bug, not an outage")

    async def scenario() -> None:
        checkpointer = Checkpointer(
            Broken([]),  # type: ignore[arg-type]
            _Committer([]),
            _retry,
            lambda *_: None,
        )
        await checkpointer.submit(Checkpoint(_Prepared(1), {0: 1}))  # type: ignore[arg-type]
        await checkpointer.drain()

    with pytest.raises(CdrError):
        asyncio.run(scenario())


@pytest.mark.parametrize(
    ("error", "service"),
    [
        (redis_lib.ConnectionError("refused"), "Redis"),
        (redis_lib.TimeoutError("slow"), "Redis"),
        (ch_errors.NetworkError("refused"), "ClickHouse"),
        (EOFError("Unexpected EOF while reading bytes"), "ClickHouse"),
        (KafkaConnectionError("down"), "Kafka"),
        (BrokerTimeout("Kafka at x: no answer"), "Kafka"),
        (ServiceUnavailable("Redis at x does not answer"), "Redis"),
        (ConnectionRefusedError(), "a service"),
        (CommitFailedError("rebalanced"), None),
        (CdrError("bad record"), None),
        (ValueError("a bug"), None),
        (WorkerFailed("stalled", EXIT_STALLED), None),
        (RedisServerChanged("Redis at x: another server process"), None),
    ],
)
def test_only_infrastructure_errors_are_retried(error: BaseException, service: str | None) -> None:
    assert service_of(error) == service


def test_health_names_why_a_worker_is_stalled() -> None:
    health = Health(tick_at=100.0, progress_at=100.0, step_since=100.0)
    health.step = "commit"
    assert health.stall(150.0, 60) is None
    health.lag, health.partitions, health.tick_at = 0, [1], 169.0
    assert health.stall(170.0, 60) is None  # nothing left to do is not a stall
    health.lag = 1200
    why = health.stall(170.0, 60)
    assert why is not None
    assert "lag 1200 on partitions [1]" in why
    assert "step 'commit' for 70 s" in why
    health.progress_at = 169.0
    health.rebalancing_since = 100.0
    assert "a rebalance has not finished in 69 s" in (health.stall(170.0, 60) or "")
    health.rebalancing_since, health.tick_at = None, 100.0
    assert "the event loop has not run for 70 s" in (health.stall(170.0, 60) or "")
    # a loop that froze while it said "rebalancing": that report is stale, not the reason
    frozen = Health(tick_at=100.0, progress_at=100.0, step_since=100.0, rebalancing_since=45.0)
    assert frozen.stall(150.0, 60) is None
    assert "the event loop has not run for 61 s" in (frozen.stall(161.0, 60) or "")


def _watchdog(health: Health, failing: list[str]) -> tuple[Watchdog, list[str]]:
    stopped: list[str] = []
    settings = Settings(stall_timeout_s=60, shutdown_timeout_s=5)
    watchdog = Watchdog(
        settings, health, stop_worker=stopped.append, hard_exit=False,
        probe=lambda _settings: failing,
    )  # fmt: skip
    return watchdog, stopped


@pytest.fixture
def all_logs() -> Iterator[list[dict[str, Any]]]:
    """Every log event, whatever level an earlier test configured (restored afterwards)."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as logs:
            yield logs
    finally:
        structlog.configure(**saved)


def test_the_watchdog_stops_a_stalled_worker_only_while_the_services_answer(
    all_logs: list[dict[str, Any]],
) -> None:
    health = Health(tick_at=100.0, progress_at=100.0, step_since=100.0, lag=50, partitions=[0])
    health.tick_at = 170.0
    watchdog, stopped = _watchdog(health, ["ClickHouse"])
    watchdog.check(170.0)
    assert stopped == []  # ClickHouse does not answer: the worker is waiting, not stalled
    assert any("ClickHouse does not answer" in e["event"] for e in all_logs)

    watchdog, stopped = _watchdog(health, [])
    health.infra_at, health.infra_what = 150.0, "Redis"
    watchdog.check(170.0)
    assert stopped == []  # it retried Redis 20 s ago: waiting

    health.infra_at = 0.0
    all_logs.clear()
    watchdog.check(170.0)
    assert len(stopped) == 1
    assert "lag 50" in stopped[0]
    errors = [e for e in all_logs if e["log_level"] == "error"]
    assert len(errors) == 1
    assert "worker stalled" in errors[0]["event"]
    watchdog.check(171.0)
    assert len(stopped) == 1  # asked once


def _progress(index: int, records: int, lag: int | None, *, run: int = 0) -> Progress:
    return Progress(index, run, WorkerSummary(index, records=records), lag, [index], "running")


def test_the_progress_line_adds_the_workers_up() -> None:
    lines: list[dict[str, Any]] = []
    reporter = Reporter(
        interval_s=0, stream=io.StringIO(), live=False,
        emit=lambda event, **fields: lines.append({"event": event, **fields}),
    )  # fmt: skip
    reporter.update(_progress(0, 1000, 400))
    reporter.update(_progress(1, 500, None))
    reporter.update(_progress(1, 800, 300))
    assert [line["event"] for line in lines] == ["progress"] * 3
    assert lines[1]["lag"] == "?"  # one worker's lag unknown: the total is unknown
    last = lines[-1]
    assert last["rated"] == 1800
    assert last["lag"] == 700
    assert last["workers"] == 2
    assert isinstance(last["cdrs_per_s"], int)
    assert last["eta_s"] != "?"
    # a restarted worker's new run adds to what its first run committed
    reporter.update(_progress(1, 50, 250, run=1))
    assert lines[-1]["rated"] == 1850
    assert lines[-1]["lag"] == 650


def test_on_a_terminal_the_progress_is_one_live_line() -> None:
    stream = io.StringIO()
    reporter = Reporter(interval_s=10, stream=stream, live=True)
    reporter.update(_progress(0, 1000, 3000))
    reporter.update(_progress(0, 2000, 2000))
    reporter.close()
    text = stream.getvalue()
    assert "rating (1 worker)" in text
    assert "CDRs/s" in text
    assert "lag 2,000" in text
    assert "2.00k/4.00k" in text  # records rated out of rated + lag; tqdm adds the ETA


def test_a_workers_exit_is_said_in_words() -> None:
    assert exit_text(-signal.SIGKILL) == "was killed by SIGKILL"
    assert exit_text(3) == "stalled (exit status 3)"
    assert exit_text(1) == "failed (exit status 1)"


class _Recovery:
    """Recovery's two calls the worker makes: the server check and the repair."""

    def __init__(self) -> None:
        self.run_ids = ["a", "a", "b", "b", "b", "b"]
        self.repair_fails = True
        self.repaired: list[list[int]] = []

    def server_changed(self) -> bool:
        return self.run_ids.pop(0) != self.run_ids[0] if len(self.run_ids) > 1 else False

    def check_and_repair(self, topic_id: str, partitions: list[int]) -> Repair:
        if self.repair_fails:
            raise ch_errors.NetworkError("ClickHouse refused")
        self.repaired.append(partitions)
        return Repair()


def test_no_batch_is_debited_on_a_changed_redis_until_its_losses_were_applied_again() -> None:
    """The server change is seen once (the next look says 'same server'); a repair that fails
    (ClickHouse down) must not clear it: a batch debited then would hide the lost debits."""
    worker = Worker(Settings())
    recovery = _Recovery()
    worker._recovery = recovery  # type: ignore[assignment]
    worker._assigned = (0, 2)

    class _Pipeline:
        topic_id = "t"

    worker._pipeline = _Pipeline()  # type: ignore[assignment]
    worker._before_debit()  # same server: the batch goes on
    with pytest.raises(RedisServerChanged):
        worker._before_debit()  # changed
    with pytest.raises(RedisServerChanged):
        worker._before_debit()  # the same new server, but nothing repaired yet

    with pytest.raises(ch_errors.NetworkError):
        asyncio.run(worker._repair_losses())
    with pytest.raises(RedisServerChanged):
        worker._before_debit()  # still blocked: the repair failed
    recovery.repair_fails = False
    asyncio.run(worker._repair_losses())
    worker._before_debit()
    assert recovery.repaired == [[0, 2]]
