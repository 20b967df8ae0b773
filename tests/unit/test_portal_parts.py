"""Portal parts without services: signed sessions, CSRF tokens, the SVG chart, money text."""

from __future__ import annotations

import time

from rater.portal import sessions
from rater.portal.chart import Day, svg
from rater.portal.web import money

KEY = b"k" * 32


def test_a_session_round_trips_and_any_change_breaks_it() -> None:
    made = sessions.new_session("R1", 3, 3600)
    cookie = sessions.encode(KEY, made)
    assert sessions.decode(KEY, cookie) == made
    payload, signature = cookie.split(".")
    assert sessions.decode(KEY, payload + "." + signature[:-1] + "0") in (None, made)
    assert sessions.decode(b"x" * 32, cookie) is None
    assert sessions.decode(KEY, payload[:-2] + "." + signature) is None
    assert sessions.decode(KEY, "") is None
    assert sessions.decode(KEY, "a.b.c") is None
    assert sessions.decode(KEY, cookie, now=time.time() + 3601) is None


def test_csrf_tokens_are_bound_to_their_nonce() -> None:
    token = sessions.csrf_token(KEY, "n1")
    assert sessions.csrf_ok(KEY, "n1", token)
    assert not sessions.csrf_ok(KEY, "n2", token)
    assert not sessions.csrf_ok(KEY, "", sessions.csrf_token(KEY, ""))
    assert not sessions.csrf_ok(KEY, "n1", "")


def test_the_chart_escapes_text_and_draws_each_day() -> None:
    days = [Day("2026-11-01", 2_000_000, 1_500_000, 500_000), Day("2026-11-02", 0, 0, 0)]
    drawn = svg(days, "<EUR>")
    assert drawn.startswith("<svg")
    assert "&lt;EUR&gt;" in drawn
    assert "<EUR>" not in drawn
    assert drawn.count("<circle") == 2
    assert "no calls" in svg([], "EUR")
    negative = svg([Day("2026-11-03", 100, 300, -200)], "EUR")
    assert "-0.00" in negative or "0.00" in negative


def test_money_shows_cents_and_keeps_finer_digits() -> None:
    assert money(5_000_000) == "5.00"
    assert money(98_000, 4) == "0.0980"
    assert money(1_234_567) == "1.234567"
    assert money(-880_000) == "-0.88"
    assert money(None) == ""
