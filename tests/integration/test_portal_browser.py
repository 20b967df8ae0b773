"""The portal in a real browser (Debian's headless chromium through Selenium) against a real
`rater serve`: the notice's tip 3 end to end, tips 1 and 2 as the overview shows them, the
coverage refusal, and another reseller's pages answering 404.

With PORTAL_SCREENSHOTS=DIR set, the main pages are saved there as PNG (docs/images/ holds
the ones the README shows)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from portal_support import browser
from serve_support import Served, serve

from rater.accounts.api import Accounts
from rater.accounts.cardsheet import read_sheet
from rater.portal.passwords import set_password
from rater.settings import Settings
from rater.tariffs.model import Steps, TariffRow, TariffTable
from rater.tariffs.store import TariffStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# not the notice's full name: tests/integration/test_tariff_cli.py counts that one's rows in
# the session's ClickHouse database
CARD_TARIFF = "Calling cards rates 40% - 60/60 billing - batch 1"
PASSWORD = "xeloq-portal-password"
BUY = TariffTable(
    name="xeloq buy", decimals=4, steps=Steps(1, 1),
    rows=(
        TariffRow("31", "Netherlands", 20_000), TariffRow("316", "Netherlands Mobile", 70_000),
        TariffRow("44", "United Kingdom", 15_000), TariffRow("447", "UK Mobile", 60_000),
    ),
)  # fmt: skip


@pytest.fixture
def books(settings: Settings, redis: Any) -> Accounts:
    TariffStore(redis, settings, clickhouse=False).save(BUY)
    accounts = Accounts(settings, redis, actor="test")
    accounts.create_reseller("xeloq", "XeloQ Communications", credit="600", buy_tariff=BUY.name)
    set_password(redis, "xeloq", PASSWORD)
    accounts.create_reseller("other", "Other reseller", credit="50", buy_tariff=BUY.name)
    accounts.create_customer("other-sip", "Theirs", reseller_id="other", tariff=BUY.name)
    return accounts


@pytest.fixture
def served(settings: Settings, books: Accounts, tmp_path: Path) -> Iterator[Served]:
    with serve(settings.replace(portal_census_s=1), tmp_path) as running:
        yield running


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Any]:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with browser(downloads) as driver:
        driver.downloads = downloads
        yield driver


def _shot(driver: Any, name: str) -> None:
    folder = os.environ.get("PORTAL_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"portal-{name}.png"))


def _by(kind: str) -> Any:
    from selenium.webdriver.common.by import By

    return getattr(By, kind)


def _fill(driver: Any, values: dict[str, str]) -> None:
    for field_id, value in values.items():
        element = driver.find_element(_by("ID"), field_id)
        if element.tag_name == "select":
            from selenium.webdriver.support.ui import Select

            Select(element).select_by_value(value)
        else:
            element.clear()
            element.send_keys(value)


def _submit(driver: Any, form_selector: str) -> None:
    driver.find_element(_by("CSS_SELECTOR"), f"{form_selector} button[type=submit]").click()


def _login(driver: Any, served: Served) -> str:
    base = f"http://127.0.0.1:{served.port}/portal"
    driver.get(base + "/")
    assert driver.current_url.endswith("/portal/login")
    _shot(driver, "login")
    _fill(driver, {"reseller": "xeloq", "password": PASSWORD})
    # the keyboard works: Enter in the password field submits
    from selenium.webdriver.common.keys import Keys

    driver.find_element(_by("ID"), "password").send_keys(Keys.ENTER)
    _wait(lambda: driver.current_url.endswith("/portal/"))
    return base


def _wait(check: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


def _download(driver: Any, pattern: str) -> Path:
    folder: Path = driver.downloads
    found: list[Path] = []

    def done() -> bool:
        found[:] = [p for p in folder.glob(pattern) if not p.name.endswith(".crdownload")]
        return bool(found) and not list(folder.glob("*.crdownload"))

    _wait(done)
    return found[0]


def _until_counted(driver: Any) -> None:
    """The overview once the background count of the cards is there (reloaded until then)."""

    def shown() -> bool:
        if "Cards counted" in _text(driver):
            return True
        driver.refresh()
        return False

    _wait(shown)


def _text(driver: Any) -> str:
    """The page's text; '' while a form's answer replaces the page (its body goes stale)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return str(driver.find_element(_by("TAG_NAME"), "body").text)
    except (StaleElementReferenceException, NoSuchElementException):
        return ""


def test_tip3_in_the_browser(web: Any, served: Served, books: Accounts) -> None:
    base = _login(web, served)
    # 1. the new tariff table: 40% over the buy rates, 60/60 billing, in one form
    web.get(base + "/tariffs")
    _fill(web, {"base": BUY.name, "percent": "40", "steps": "60/60", "derive-name": CARD_TARIFF})
    web.find_element(_by("CSS_SELECTOR"), "input[name=how][value=markup]").click()
    _shot(web, "tariffs")
    _submit(web, "#derive-form")
    _wait(lambda: "saved" in _text(web))
    assert "0.0980" in _text(web)  # a Dutch mobile minute: 0.0700 x 1.40
    web.find_element(_by("ID"), "q").send_keys("+31612345678")
    _submit(web, "form.search")
    _wait(lambda: "q=%2B31612345678" in web.current_url)
    _shot(web, "tariff")
    # 2 and 3. the card-batch customer on that table
    web.get(base + "/customers")
    _fill(web, {"customer_id": "ccbatch1", "name": "Calling card user batch 1",
                "tariff": CARD_TARIFF})  # fmt: skip
    web.find_element(_by("CSS_SELECTOR"), "input[name=kind][value=card_batch]").click()
    _submit(web, "#new-customer")
    _wait(lambda: "/customers/ccbatch1" in web.current_url)
    # 4. 100 cards of 5 EUR; the answer is the XLSX
    _fill(web, {"count": "100", "value": "5"})
    _submit(web, "#cards-form")
    sheet = _download(web, "cards-ccbatch1-*.xlsx")
    cards = read_sheet(sheet)
    assert len(cards) == 100
    assert {(c.value, c.currency, c.tariff) for c in cards} == {(5_000_000, "EUR", CARD_TARIFF)}
    assert all(c.pin is not None and len(c.pin) == 4 and c.pin.isdigit() for c in cards)
    assert len({c.number for c in cards}) == 100
    from openpyxl import load_workbook

    header = next(load_workbook(sheet, read_only=True).active.iter_rows(values_only=True))
    assert header[:2] == ("Card number", "PIN")
    assert books.verify_pin(cards[0].number, cards[0].pin or "").ok
    # the credit covers everything: 600 against 500 on the batch
    web.get(base + "/customers/ccbatch1")
    assert "500.00 EUR" in web.find_element(_by("ID"), "balance").text
    _shot(web, "customer")
    web.get(base + "/")
    _until_counted(web)
    assert "100.00 EUR to spare" in web.find_element(_by("ID"), "coverage").text
    _shot(web, "overview")


def test_tips_1_and_2_and_the_coverage_refusal(web: Any, served: Served, books: Accounts) -> None:
    books.create_customer("sip1", "Jansen BV", reseller_id="xeloq", tariff=BUY.name, balance="5")
    base = _login(web, served)
    # a card of 0.50 on the SIP account: below 1.00, its caller number needs the PIN (tip 1)
    web.get(base + "/customers/sip1")
    _fill(web, {"count": "1", "value": "0.50"})
    _submit(web, "#cards-form")
    (card,) = read_sheet(_download(web, "cards-sip1-*.xlsx"))
    books.add_ani(card.number, "+31205550101")
    # tip 2: the SIP account corrected down to 0.00 stops its cards
    web.get(base + "/customers/sip1")
    _fill(web, {"correct-amount": "5", "correct-reason": "booked twice"})
    _submit(web, "#correct-form")
    _wait(lambda: "balance now 0" in _text(web))
    web.get(base + "/")
    _until_counted(web)
    ani = web.find_element(_by("ID"), "ani-alert").text
    assert "1 card(s) in use are below 1.00 EUR" in ani
    assert card.number in _text(web)
    assert "1 customer(s) at or below zero" in web.find_element(_by("ID"), "neg-alert").text
    assert "sip1" in _text(web)
    _shot(web, "alerts")
    # coverage: a batch beyond the credit is refused with the shortfall named
    web.get(base + "/customers")
    _fill(web, {"customer_id": "cc2", "tariff": BUY.name})
    web.find_element(_by("CSS_SELECTOR"), "input[name=kind][value=card_batch]").click()
    _submit(web, "#new-customer")
    _wait(lambda: "/customers/cc2" in web.current_url)
    _fill(web, {"count": "200", "value": "5"})
    _submit(web, "#cards-form")
    _wait(lambda: "shortfall" in _text(web))
    alert = web.find_element(_by("CSS_SELECTOR"), "[role=alert]").text
    assert "shortfall 400.00 EUR" in alert
    assert books.list_cards("cc2") == []
    # another reseller's customer: 404, as an unknown one
    for url in ("/customers/other-sip", "/customers/nobody"):
        web.get(base + url)
        assert web.find_element(_by("TAG_NAME"), "h1").text == "404"
    # reports: two weeks of calls as the pipeline stores them, drawn as the SVG chart
    _calls(books.settings)
    web.get(base + "/reports")
    assert "Netherlands Mobile" in _text(web)
    chart = web.find_element(_by("CSS_SELECTOR"), "figure.chart svg")
    assert chart.get_attribute("role") == "img"
    _shot(web, "reports")


def _calls(settings: Settings) -> None:
    from datetime import UTC, datetime, timedelta

    from analytics_support import cdr

    from rater.billing.rows import insert_rows
    from rater.clickhouse.executor import DriverExecutor

    today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0, tzinfo=None)
    rows = []
    for n in range(140):
        day = today - timedelta(days=n % 14)
        mobile = n % 3 != 0
        rows.append(
            cdr(
                10_000 + n, when=day + timedelta(minutes=n), reseller="xeloq", customer="sip1",
                destination="Netherlands Mobile" if mobile else "Netherlands",
                billsec=0 if n % 7 == 0 else 60 + 17 * (n % 11),
                price=(98_000 if mobile else 28_000) * (1 + n % 5),
                cost=(70_000 if mobile else 20_000) * (1 + n % 5),
            )
        )  # fmt: skip
    insert_rows(DriverExecutor.from_settings(settings), rows)
