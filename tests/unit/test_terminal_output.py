"""Text from records reaches a terminal with its control characters shown, never sent
(rater/escape.py terminal): report tables, account tables and blocks, JSON, errors."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rater.analytics.tables import Col, Kind, Report, to_text
from rater.cli import _output
from rater.cli.main import main
from rater.escape import terminal

#: clears the screen, turns text red, retitles the window, reorders what follows, overwrites
HOSTILE = "\x1b[2J\x1b[31mred\x1b]0;title\x07\u202eevil\rover\x9b1m"
#: Unicode bidirectional classes of the embeddings, overrides, isolates and marks
BIDI_CONTROLS = {"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"}
RAW = ("\x1b", "\x07", "\r", "\u202e", "\x9b")


def _clean(text: str) -> None:
    for char in RAW:
        assert char not in text, f"{char!r} reached the terminal in {text!r}"


def test_terminal_shows_each_control_character() -> None:
    shown = terminal(HOSTILE)
    _clean(shown)
    assert shown.startswith("\\x1b[2J\\x1b[31mred")
    assert "\\u202e" in shown
    assert "\\r" not in shown
    assert "\\x0d" in shown
    assert terminal("a\nb") == "a\\x0ab"
    assert terminal("a\nb\tc", newlines=True) == "a\nb\\x09c"
    assert terminal("Côte d'Ivoire – 東京") == "Côte d'Ivoire – 東京"


@given(st.text())
def test_terminal_output_never_holds_a_control_character(text: str) -> None:
    shown = terminal(text)
    for char in shown:
        assert unicodedata.category(char) != "Cc", repr(shown)
        assert unicodedata.bidirectional(char) not in BIDI_CONTROLS, repr(shown)
        assert char not in "\u2028\u2029", repr(shown)


def test_report_table_shows_escapes() -> None:
    report = Report(
        f"Destinations {HOSTILE}",
        (Col("destination", "Destination", Kind.TEXT), Col("calls", "Calls", Kind.COUNT)),
        [(HOSTILE, 3)],
        notes=[f"note {HOSTILE}"],
    )
    text = to_text(report)
    _clean(text)
    assert "\\x1b[31mred" in text


def test_account_tables_and_blocks_show_escapes() -> None:
    _clean(_output.table(["name", "calls"], [[HOSTILE, 1]], numeric={1}))
    _clean(_output.block([("name", HOSTILE), ("list", [HOSTILE, "x"])], title=HOSTILE))


def test_warnings_show_escapes(capsys: pytest.CaptureFixture[str]) -> None:
    _output.warn(f"card {HOSTILE} is blocked")
    _clean(capsys.readouterr().err)


def test_json_output_has_no_raw_c1_controls(capsys: pytest.CaptureFixture[str]) -> None:
    _output.emit_json({"name": HOSTILE})
    out = capsys.readouterr().out
    _clean(out)
    assert json.loads(out) == {"name": HOSTILE}


def test_errors_show_escapes_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["report", "query", HOSTILE])
    assert exited.value.code == 2  # a usage mistake
    err = capsys.readouterr().err
    _clean(err)
    assert err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1
