"""The portal over HTTP (Starlette's TestClient on the `rater serve` application, real Redis
and ClickHouse): sessions, CSRF, failed-login limits, and every URL and form with another
reseller's ids answering 404 (docs/PORTAL.md)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from portal_support import PASSWORD, Books, csrf_of, login, make_books
from starlette.testclient import TestClient

from rater.accounts.cardsheet import read_sheet
from rater.portal.passwords import set_password
from rater.redis import keys
from rater.serve.app import create_app
from rater.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def books(settings: Settings, redis: Any) -> Books:
    return make_books(settings, redis)


@pytest.fixture
def client(settings: Settings, books: Books) -> Iterator[TestClient]:
    with TestClient(create_app(settings), follow_redirects=False) as made:
        yield made


def _form(client: TestClient, page: str = "/portal/") -> str:
    return csrf_of(client.get(page).text)


def test_login_session_csrf_and_logout(client: TestClient, redis: Any) -> None:
    assert client.get("/portal/").headers["location"] == "/portal/login"
    refused = login(client, "RA", "wrong password!")
    assert refused.status_code == 401
    assert "not accepted" in refused.text
    assert login(client, "nobody", "whatever-password").status_code == 401
    done = login(client, "RA")
    assert (done.status_code, done.headers["location"]) == (303, "/portal/")
    cookie = done.headers["set-cookie"]
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/portal", "Max-Age=28800"):
        assert attribute.lower() in cookie.lower()
    page = client.get("/portal/")
    assert page.status_code == 200
    assert "Reseller RA" in page.text
    assert "script" not in page.headers["content-security-policy"]
    # a form without its token, or with another session's, is refused
    no_token = client.post("/portal/customers/ra-sip/topup", data={"amount": "1", "reason": "x"})
    assert no_token.status_code == 403
    assert (
        client.post(
            "/portal/customers/ra-sip/topup", data={"amount": "1", "reason": "x", "csrf": "0" * 64}
        ).status_code
        == 403
    )
    # a new password ends the session
    stolen = dict(client.cookies)
    set_password(redis, "RA", "another-password-1")
    assert client.get("/portal/").headers["location"] == "/portal/login"
    client.cookies.clear()
    assert login(client, "RA", "another-password-1").status_code == 303
    token = _form(client)
    assert client.post("/portal/logout", data={"csrf": token}).status_code == 303
    client.cookies.clear()
    for name, value in stolen.items():
        client.cookies.set(name, value, path="/portal")
    assert client.get("/portal/").headers["location"] == "/portal/login"


def test_failed_logins_are_limited(client: TestClient, settings: Settings) -> None:
    for _ in range(settings.portal_login_failures):
        assert login(client, "RA", "wrong password!").status_code == 401
    limited = login(client, "RA")  # the right password, too late
    assert limited.status_code == 429
    assert "Too many failed logins" in limited.text
    assert login(client, "RB").status_code == 303  # another id is not held up


def test_a_forged_or_expired_cookie_is_no_session(client: TestClient, settings: Settings) -> None:
    from rater.portal import sessions

    key = sessions.signing_key(settings)
    old = sessions.Session("RA", 1, 1_000, "00" * 16)
    client.cookies.set(sessions.COOKIE, sessions.encode(key, old), path="/portal")
    assert client.get("/portal/").status_code == 303
    forged = sessions.encode(b"x" * 32, sessions.new_session("RA", 1, 3600))
    client.cookies.set(sessions.COOKIE, forged, path="/portal")
    assert client.get("/portal/").status_code == 303


def test_other_resellers_ids_are_404_in_every_url_and_form(
    client: TestClient, books: Books
) -> None:
    accounts = books.accounts
    before = (
        accounts.get_customer("rb-sip").balance,
        accounts.get_card(books.b_card).status,
        accounts.get_reseller("RB").credit,
        len(accounts.list_cards("rb-batch")),
    )
    assert login(client, "RA").status_code == 303
    token = _form(client)
    gets = [
        "/portal/customers/rb-sip",
        "/portal/customers/rb-batch",
        f"/portal/batches/{books.b_batch}/export.xlsx",
        "/portal/tariffs/view?name=cards%20RB",
        "/portal/tariffs/view?name=buy%20RB",
        "/portal/customers/no-such-customer",  # unknown looks the same
    ]
    for url in gets:
        answer = client.get(url)
        assert answer.status_code == 404, url
        assert "Not found" in answer.text
    posts: list[tuple[str, dict[str, str]]] = [
        ("/portal/customers/rb-sip/topup", {"amount": "1", "reason": "x"}),
        ("/portal/customers/rb-sip/correct", {"amount": "1", "reason": "x", "direction": "add"}),
        ("/portal/customers/rb-batch/cards", {"count": "1", "value": "1", "disposable": "yes"}),
        ("/portal/customers/rb-sip/cards", {"count": "1", "value": "1"}),
        (f"/portal/cards/{books.b_card}/block", {}),
        (f"/portal/cards/{books.b_card}/unblock", {}),
        (f"/portal/cards/{books.b_card}/topup", {"amount": "1", "reason": "x"}),
        (
            "/portal/tariffs/derive",
            {"base": "cards RB", "how": "markup", "percent": "10", "name": "mine"},
        ),
        (
            "/portal/tariffs/derive",
            {"base": "buy RB", "how": "markup", "percent": "10", "name": "mine"},
        ),
        ("/portal/customers", {"customer_id": "ra-new", "tariff": "cards RB"}),
        ("/portal/customers", {"customer_id": "ra-new", "tariff": "buy RB"}),
        ("/portal/cards/99999999999/block", {}),
    ]
    for url, data in posts:
        answer = client.post(url, data={**data, "csrf": token})
        assert answer.status_code == 404, (url, answer.status_code, answer.text[:300])
    after = (
        accounts.get_customer("rb-sip").balance,
        accounts.get_card(books.b_card).status,
        accounts.get_reseller("RB").credit,
        len(accounts.list_cards("rb-batch")),
    )
    assert after == before
    assert not accounts.redis.exists(keys.account_index("ra-new"))
    assert not accounts.redis.exists(keys.tariff_index("mine"))
    # and RA's own pages list nothing of RB's
    for page in ("/portal/", "/portal/customers", "/portal/tariffs"):
        text = client.get(page).text
        for theirs in ("rb-sip", "cards RB", "buy RB"):
            assert theirs not in text, page


def test_card_batch_answer_is_the_sheet_and_export_has_no_pins(
    client: TestClient, books: Books, tmp_path: Path
) -> None:
    assert login(client, "RA").status_code == 303
    token = _form(client, "/portal/customers/ra-batch")
    made = client.post(
        "/portal/customers/ra-batch/cards",
        data={"csrf": token, "count": "10", "value": "2", "disposable": "yes"},
    )
    assert made.status_code == 200, made.text[:500]
    assert made.headers["content-disposition"].startswith('attachment; filename="cards-ra-batch-')
    assert made.headers["cache-control"] == "no-store"
    sheet = tmp_path / "issued.xlsx"
    sheet.write_bytes(made.content)
    issued = read_sheet(sheet)
    assert len(issued) == 10
    assert all(card.pin and card.value == 2_000_000 for card in issued)
    # verify a PIN from the sheet against the account API: the sheet is the batch
    accounts = books.accounts
    assert accounts.verify_pin(issued[0].number, issued[0].pin or "").ok
    batch = issued[0].batch_id
    export = client.get(f"/portal/batches/{batch}/export.xlsx")
    assert export.status_code == 200
    book = load_workbook(io.BytesIO(export.content), read_only=True)
    header = next(book.active.iter_rows(values_only=True))
    assert "PIN" not in header
    assert len(list(book.active.iter_rows(values_only=True))) == 11


def test_coverage_refusal_names_the_shortfall(client: TestClient, books: Books) -> None:
    # RA: credit 100, its SIP customer holds 20 and its batch 15: 65 free
    assert login(client, "RA").status_code == 303
    token = _form(client, "/portal/customers/ra-batch")
    refused = client.post(
        "/portal/customers/ra-batch/cards",
        data={"csrf": token, "count": "100", "value": "1", "disposable": "yes"},
        follow_redirects=True,
    )
    assert refused.status_code == 200
    assert "shortfall 35.00 EUR" in refused.text
    assert len(books.accounts.list_cards("ra-batch")) == 3


def test_top_up_and_correction_need_a_reason(client: TestClient, books: Books) -> None:
    assert login(client, "RA").status_code == 303
    token = _form(client, "/portal/customers/ra-sip")
    missing = client.post(
        "/portal/customers/ra-sip/topup",
        data={"csrf": token, "amount": "5", "reason": " "},
        follow_redirects=True,
    )
    assert "a reason is required" in missing.text
    done = client.post(
        "/portal/customers/ra-sip/topup",
        data={"csrf": token, "amount": "5", "reason": "invoice 7 paid"},
        follow_redirects=True,
    )
    assert "balance now 25.000000" in done.text
    client.post(
        "/portal/customers/ra-sip/correct",
        data={"csrf": token, "amount": "1.5", "reason": "booked twice", "direction": "deduct"},
    )
    assert books.accounts.get_customer("ra-sip").balance == 23_500_000
    disposable = books.accounts.list_cards("ra-batch")[0].number
    refused = client.post(
        f"/portal/cards/{disposable}/topup",
        data={"csrf": token, "amount": "1", "reason": "asked"},
        follow_redirects=True,
    )
    assert "is disposable: it is never topped up" in refused.text


def test_deck_upload_reports_each_bad_row_by_line(client: TestClient, books: Books) -> None:
    assert login(client, "RA").status_code == 303
    token = _form(client, "/portal/tariffs")
    deck = b"prefix,destination,rate\n31,Netherlands,0.02\n32,Belgium,abc\nx4,UK,0.01\n"
    bad = client.post(
        "/portal/tariffs/upload",
        data={"csrf": token, "name": "my deck", "steps": "60/60", "decimals": "4"},
        files={"deck": ("deck.csv", deck, "text/csv")},
    )
    assert bad.status_code == 400
    assert "line 3" in bad.text
    assert "line 4" in bad.text
    assert not books.accounts.redis.exists(keys.tariff_index("my deck"))
    good = client.post(
        "/portal/tariffs/upload",
        data={"csrf": token, "name": "my deck", "steps": "60/60", "decimals": "4"},
        files={"deck": ("deck.csv", b"prefix,destination,rate\n31,Netherlands,0.02\n", "text/csv")},
        follow_redirects=True,
    )
    assert good.status_code == 200
    assert "saved &#39;my deck&#39; version 1" in good.text
    from rater.tariffs.store import TariffStore

    store = TariffStore(books.accounts.redis, books.accounts.settings, clickhouse=False)
    assert store.owner("my deck") == "RA"
    # a name another reseller holds is not taken over
    taken = client.post(
        "/portal/tariffs/upload",
        data={"csrf": token, "name": "cards RB", "steps": "60/60", "decimals": "4"},
        files={"deck": ("deck.csv", b"prefix,destination,rate\n31,NL,0.02\n", "text/csv")},
        follow_redirects=True,
    )
    assert "exists; choose another name" in taken.text
    assert store.get("cards RB").version == 1
    assert PASSWORD  # the module's fixture data stays in one place


def test_reports_and_their_downloads_escape_formulas(
    client: TestClient, settings: Settings, books: Books
) -> None:
    from datetime import UTC, datetime

    from analytics_support import cdr

    from rater.billing.rows import insert_rows
    from rater.clickhouse.executor import DriverExecutor

    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    rows = [
        cdr(500 + n, when=now, reseller=r, customer=f"{r.lower()}-sip", destination=d,
            price=200_000, cost=120_000)
        for n, (r, d) in enumerate([("RA", "=1+2"), ("RA", "Netherlands"), ("RB", "Theirs")])
    ]  # fmt: skip
    insert_rows(DriverExecutor.from_settings(settings), rows)
    assert login(client, "RA").status_code == 303
    page = client.get("/portal/reports")
    assert page.status_code == 200
    for title in ("Day", "Revenue", "Margin %", "ASR", "ACD"):
        assert f">{title}</th>" in page.text
    assert "<svg" in page.text
    assert "Theirs" not in page.text  # another reseller's calls
    csv = client.get("/portal/reports/destinations.csv")
    assert csv.status_code == 200
    assert "'=1+2" in csv.text
    assert "Theirs" not in csv.text
    xlsx = client.get("/portal/reports/daily.xlsx")
    book = load_workbook(io.BytesIO(xlsx.content), read_only=True)
    assert next(book.active.iter_rows(values_only=True))[0] == "day"
    assert client.get("/portal/reports/daily.exe").status_code in (303, 404)
