"""Redis loses its last writes (a host crash with `appendfsync everysec`, a replica promoted
while it lagged): balances converge from ClickHouse without an operator, and a larger loss (an
old snapshot) is reported, never silent (docs/DESIGN.md section 3, "Redis data loss").

The loss is made for real: a Redis of the test's own (append-only file, fsync always), killed
with SIGKILL, its append-only file cut back to an earlier size, and started again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib
from click.testing import CliRunner
from pipeline_world import (
    RESELLER,
    Workload,
    World,
    cdr,
    make_world,
    publish,
    run_in_process,
    spawn,
    workload,
)

from rater import clickhouse, kafka
from rater.accounts.api import Accounts
from rater.billing.reconcile import reconcile
from rater.billing.recovery import Recovery, missing_accounts
from rater.cli.main import cli
from rater.kafka import topic_identity
from rater.redis import keys
from rater.redis import topology as topologies
from rater.settings import Settings
from rater.stack.redis import redis_binary

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class PrivateRedis:
    """A redis-server of this test: AOF on, fsync always, so the file's size marks a moment."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = redis_binary()
        assert binary is not None, "no redis-server"
        self.process = subprocess.Popen(
            [
                str(binary),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--aof-use-rdb-preamble",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis_lib.Redis(port=self.port)
        deadline = time.monotonic() + 20
        while True:
            try:
                if client.ping():
                    break
            except redis_lib.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def _incr(self) -> Path:
        files = sorted((self.folder / "appendonlydir").glob("*.incr.aof"))
        assert len(files) == 1, files
        return files[0]

    def mark(self) -> int:
        """The size of the append-only file now (every write so far is in it)."""
        return self._incr().stat().st_size

    def crash_and_cut(self, size: int) -> None:
        """SIGKILL, then cut the append-only file back to `size`, then start again: Redis comes
        back without every write made after the mark."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        with self._incr().open("r+b") as aof:
            aof.truncate(size)
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@pytest.fixture
def world_settings(
    base_settings: Settings, tmp_path: Path
) -> Iterator[tuple[Settings, PrivateRedis]]:
    """Settings of this test alone: its topics, group and ClickHouse database, and its Redis."""
    server = PrivateRedis(tmp_path)
    server.start()
    tag = uuid.uuid4().hex[:8]
    settings = base_settings.replace(
        redis_url=server.url,
        redis_cluster_nodes="",
        clickhouse_database=f"t_loss_{tag}",
        topic_cdrs=f"loss-{tag}",
        topic_dlq=f"loss-{tag}.dlq",
        topic_meta=f"loss-{tag}.meta",
        consumer_group=f"loss-{tag}",
    )
    clickhouse.migrate(settings)
    asyncio.run(kafka.ensure_topics(settings))
    try:
        yield settings, server
    finally:
        server.stop()
        admin = clickhouse.client(settings, database="default", numpy=False)
        admin.execute(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        admin.disconnect()


def _differences(settings: Settings) -> list[str]:
    client = redis_lib.Redis.from_url(settings.redis_url)
    try:
        return [f"{c.level} {c.account}: {c.difference}" for c in reconcile(settings, client)
                if not c.ok]  # fmt: skip
    finally:
        client.close()


def _calls(prefix: str, count: int, **fields: object) -> list[dict[str, object]]:
    return [cdr(f"{prefix}-{i}", billsec=60 + 7 * i, **fields) for i in range(count)]


def test_lost_debits_and_top_ups_are_applied_again_from_clickhouse(
    world_settings: tuple[Settings, PrivateRedis],
) -> None:
    settings, server = world_settings
    client = redis_lib.Redis.from_url(settings.redis_url)
    world = make_world(settings, client, cards=2)
    publish(settings, _calls("a", 6))
    run_in_process(settings)
    assert _differences(settings) == []
    cut = server.mark()

    # what Redis will lose: a top-up (in the ledger) and a batch of debits (in rated_cdrs),
    # card calls among them
    Accounts(settings, client, actor="test").topup_customer("cust1", "5", reason="paid")
    publish(settings, _calls("b", 5) + _calls("k", 3, card=world.cards[0]))
    run_in_process(settings)
    assert _differences(settings) == []
    balance_keys = [
        keys.reseller(RESELLER), keys.customer(RESELLER, "cust1"),
        keys.customer(RESELLER, "cust2"), *(keys.card(RESELLER, n) for n in world.cards),
    ]  # fmt: skip
    before = {k: client.hget(k, "bal") for k in balance_keys}

    server.crash_and_cut(cut)
    client = redis_lib.Redis.from_url(settings.redis_url)
    lost = _differences(settings)
    assert lost, "the cut lost nothing: the test proves nothing"

    topic_id = asyncio.run(topic_identity.incarnation(settings))
    recovery = Recovery(settings, topologies.connect(settings))
    report = recovery.check_and_repair(topic_id, list(range(settings.partitions)))
    assert report.gaps
    assert report.cdrs_applied == 8
    assert report.ledger_applied == 1
    assert not report.larger_loss
    assert _differences(settings) == []
    after = {k: client.hget(k, "bal") for k in before}
    assert after == before

    again = recovery.check_and_repair(topic_id, list(range(settings.partitions)))
    assert not again.anything  # nothing is applied twice
    assert _differences(settings) == []
    # the stream goes on from where it was, charging the next CDRs once
    publish(settings, _calls("c", 2))
    run_in_process(settings)
    assert _differences(settings) == []


def test_a_restore_from_an_older_snapshot_is_reported(
    world_settings: tuple[Settings, PrivateRedis],
) -> None:
    settings, server = world_settings
    client = redis_lib.Redis.from_url(settings.redis_url)
    make_world(settings, client, cards=0)
    cut = server.mark()  # the snapshot: before the cards were made
    batch = Accounts(settings, client, actor="test").create_cards("cust1", count=2, value="10")
    card = batch.cards[0].number
    publish(settings, _calls("s", 3, card=card))
    run_in_process(settings)

    server.crash_and_cut(cut)
    topology = topologies.connect(settings)
    topic_id = asyncio.run(topic_identity.incarnation(settings))
    report = Recovery(settings, topology).check_and_repair(
        topic_id, list(range(settings.partitions))
    )
    assert report.larger_loss
    assert report.cdrs_unknown == 3
    gone = missing_accounts(settings, topology)
    assert ("card", card, RESELLER) in gone
    assert {b.number for b in batch.cards} <= {account for _, account, _ in gone}


def test_reconcile_shows_the_loss_and_repair_ends_it(
    world_settings: tuple[Settings, PrivateRedis],
) -> None:
    settings, server = world_settings
    client = redis_lib.Redis.from_url(settings.redis_url)
    make_world(settings, client, cards=1)
    publish(settings, _calls("r", 2))
    run_in_process(settings)
    cut = server.mark()
    publish(settings, _calls("q", 4))
    run_in_process(settings)
    server.crash_and_cut(cut)

    where = ["--redis-url", settings.redis_url, "--database", settings.clickhouse_database]
    runner = CliRunner()
    shown = runner.invoke(cli, [*where, "reconcile"], catch_exceptions=False)
    assert shown.exit_code == 1
    assert "with a difference" in shown.output
    repaired = runner.invoke(cli, [*where, "reconcile", "--repair"], catch_exceptions=False)
    assert repaired.exit_code == 0, repaired.output
    assert "repaired: 4 call debit(s)" in repaired.output
    assert "0 with a difference" in repaired.output


def test_reconcile_names_accounts_an_old_snapshot_lost_and_rebuilds_the_rest(
    world_settings: tuple[Settings, PrivateRedis],
) -> None:
    settings, server = world_settings
    client = redis_lib.Redis.from_url(settings.redis_url)
    make_world(settings, client, cards=0)
    publish(settings, _calls("o", 2))
    run_in_process(settings)
    cut = server.mark()
    accounts = Accounts(settings, client, actor="test")
    batch = accounts.create_cards("cust1", count=1, value="10")
    accounts.create_customer("cust3", "Three", reseller_id=RESELLER, tariff="retail")
    accounts.topup_customer("cust1", "3", reason="paid")  # older than the horizon below
    publish(settings, _calls("p", 2))
    run_in_process(settings)
    server.crash_and_cut(cut)

    where = ["--redis-url", settings.redis_url, "--database", settings.clickhouse_database]
    runner = CliRunner()
    shown = runner.invoke(cli, [*where, "reconcile"], catch_exceptions=False)
    assert shown.exit_code == 1
    assert f"missing in Redis: card {batch.cards[0].number} (reseller {RESELLER})" in shown.output
    refused = runner.invoke(cli, [*where, "reconcile", "--rebuild-balances"])
    assert refused.exit_code == 2  # needs --yes
    # a horizon of 0 s: the top-up is not applied again by id, the rebuild sets its balance
    rebuilt = runner.invoke(
        cli, [*where, "reconcile", "--repair", "--rebuild-balances", "--yes"],
        catch_exceptions=False, env={"RATER_RECOVERY_HORIZON_S": "0"},
    )  # fmt: skip
    assert "rebuilt customer cust1" in rebuilt.output
    assert rebuilt.exit_code == 1  # the card stays missing: it cannot be made again
    # what still differs is what Redis lost for good: the missing card (expected 10.00, none)
    topology = topologies.connect(settings)
    gone = {(level, account) for level, account, _ in missing_accounts(settings, topology)}
    assert gone == {("card", batch.cards[0].number)}
    differing = {(c.level, c.account) for c in reconcile(settings, topology.client) if not c.ok}
    assert differing == gone


def _balances(client: redis_lib.Redis, world: World) -> dict[str, int]:
    names = {
        "res": keys.reseller(RESELLER), "cust1": keys.customer(RESELLER, "cust1"),
        "cust2": keys.customer(RESELLER, "cust2"),
        **{card: keys.card(RESELLER, card) for card in world.cards},
    }  # fmt: skip
    return {name: int(client.hget(key, "bal") or 0) for name, key in names.items()}


def _wait_stored(settings: Settings, prefix: str, count: int, log: Path) -> None:
    """Until ClickHouse holds `count` CDRs of `prefix` (so their debits were made)."""
    ch = clickhouse.client(settings, numpy=False)
    deadline = time.monotonic() + 90
    try:
        while True:
            rows = ch.execute(
                "SELECT count() FROM rated_cdrs WHERE cdr_id LIKE %(p)s", {"p": f"{prefix}-%"}
            )
            if int(rows[0][0]) >= count:
                return
            if time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-4000:]
                raise AssertionError(f"{prefix}: {rows[0][0]} of {count} stored\n{tail}")
            time.sleep(0.2)
    finally:
        ch.disconnect()


def test_a_running_worker_applies_lost_debits_again_before_later_batches_are_debited(
    world_settings: tuple[Settings, PrivateRedis], tmp_path: Path
) -> None:
    """Redis loses its last writes (here: the AOF cut back, then a restart) while `rater run`
    runs; the worker's client reconnects by itself. Records still arrive: their batches would
    raise the watermarks above the lost debits, which then were never applied again (264
    accounts under-charged in reconcile when it was found). The worker must see the other
    server process and apply the lost debits before its next debit."""
    settings, server = world_settings
    settings = settings.replace(
        session_timeout_ms=3000, heartbeat_interval_ms=500, batch_max_records=40, metrics_port=0
    )
    client = redis_lib.Redis.from_url(settings.redis_url)
    world = make_world(settings, client, cards=2)
    opening = _balances(client, world)
    loads = [
        workload(world, 400, seed=seed, prefix=p) for seed, p in ((1, "a"), (2, "b"), (3, "c"))
    ]
    log = tmp_path / "run.log"
    worker = spawn(settings, log=log)
    try:
        publish(settings, loads[0].messages)
        _wait_stored(settings, "a", loads[0].unique, log)
        time.sleep(1.0)  # the last batch's commit and dead letters
        cut = server.mark()
        publish(settings, loads[1].messages)
        _wait_stored(settings, "b", loads[1].unique, log)
        time.sleep(1.0)

        server.crash_and_cut(cut)  # the worker is not told: its next command reconnects
        client = redis_lib.Redis.from_url(settings.redis_url)
        assert _differences(settings), "the cut lost nothing: the test proves nothing"
        publish(settings, loads[2].messages)
        _wait_stored(settings, "c", loads[2].unique, log)
        time.sleep(1.0)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            code = worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            raise
    text = log.read_text(errors="replace")
    assert code == 0, text[-4000:]
    assert _differences(settings) == [], text[-4000:]
    assert _balances(client, world) == _expected(opening, loads)
    assert "Redis is another server process than before" in text


def _expected(opening: dict[str, int], loads: list[Workload]) -> dict[str, int]:
    out = dict(opening)
    for load in loads:
        for name, price in [*load.price.items(), *load.card_price.items()]:
            out[name] -= price
        out["res"] -= load.cost.get(RESELLER, 0)
    return out
