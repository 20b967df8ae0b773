"""Shared by the portal tests: two resellers' books, logging in over HTTP, and Debian's
chromium driven by Selenium (nothing downloads a browser or a driver)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rater.accounts.api import Accounts
from rater.accounts.model import CustomerKind
from rater.portal.passwords import set_password
from rater.settings import Settings
from rater.tariffs.model import Steps, TariffRow, TariffTable
from rater.tariffs.store import TariffStore

PASSWORD = {"RA": "password-of-reseller-a", "RB": "password-of-reseller-b"}
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
_CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def buy_table(name: str) -> TariffTable:
    return TariffTable(
        name=name, decimals=4, steps=Steps(1, 1),
        rows=(
            TariffRow("31", "Netherlands", 20_000), TariffRow("316", "Netherlands Mobile", 70_000),
            TariffRow("44", "United Kingdom", 15_000),
        ),
    )  # fmt: skip


@dataclass(frozen=True)
class Books:
    """RA and RB, each with a SIP customer holding a card, a card-batch customer with a
    disposable batch, and a table of its own."""

    accounts: Accounts
    a_card: str
    b_card: str
    b_batch: str


def make_books(settings: Settings, redis: Any) -> Books:
    store = TariffStore(redis, settings, clickhouse=False)
    accounts = Accounts(settings, redis, actor="test")
    cards: dict[str, str] = {}
    batch = ""
    for r in ("RA", "RB"):
        store.save(buy_table(f"buy {r}"))
        accounts.create_reseller(r, f"Reseller {r}", credit="100", buy_tariff=f"buy {r}")
        store.save(replace_name(buy_table(f"buy {r}"), f"cards {r}"), owner=r)
        low = r.lower()
        accounts.create_customer(f"{low}-sip", "SIP", reseller_id=r, tariff=f"cards {r}",
                                 balance="20")  # fmt: skip
        cards[r] = accounts.create_cards(f"{low}-sip", count=1, value="5").cards[0].number
        accounts.create_customer(f"{low}-batch", "Calling card user batch 1", reseller_id=r,
                                 tariff=f"cards {r}", kind=CustomerKind.CARD_BATCH)  # fmt: skip
        made = accounts.create_cards(f"{low}-batch", count=3, value="5", disposable=True)
        batch = made.batch_id
        set_password(redis, r, PASSWORD[r])
    return Books(accounts, cards["RA"], cards["RB"], batch)


def replace_name(table: TariffTable, name: str) -> TariffTable:
    from dataclasses import replace

    return replace(table, name=name)


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, html[:2000]
    return found.group(1)


def login(client: Any, reseller: str, password: str | None = None) -> Any:
    form = client.get("/portal/login")
    return client.post(
        "/portal/login",
        data={
            "csrf": csrf_of(form.text),
            "reseller": reseller,
            "password": PASSWORD[reseller] if password is None else password,
        },
    )


# ---------------------------------------------------------------------------- the browser
def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@contextmanager
def browser(download_dir: Path) -> Iterator[Any]:
    """Headless chromium (Debian's) through chromedriver; downloads go to download_dir."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = (
            "chromium and chromium-driver are not installed "
            "(apt-get install chromium chromium-driver; `make test` does it as root)"
        )
        if _in_ci():
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="rater-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--disable-dev-shm-usage", "--window-size=1280,1000", f"--user-data-dir={profile}",
    ):  # fmt: skip
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(download_dir),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.execute_cdp_cmd(
            "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)}
        )
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
