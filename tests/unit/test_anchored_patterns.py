"""Whole-string checks use `fullmatch`, never a pattern anchored with '^...$' and `match`: '$'
also matches before a trailing newline, so 'EUR\\n' would pass for a currency and a token
with a newline for a token (rater/redis/keys.py says the same of ids)."""

from __future__ import annotations

import ast
from pathlib import Path

from rater.serve.credentials import split_token

ROOT = Path(__file__).resolve().parents[2]


def _anchored(path: Path) -> list[str]:
    """re.compile / re.match / re.search calls whose literal pattern is '^...$'."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in ("compile", "match", "search") or not node.args:
            continue
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            text = first.value
            if text.startswith("^") and text.endswith("$") and not text.endswith("\\$"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text!r}")
    return found


def test_no_pattern_is_anchored_with_caret_and_dollar() -> None:
    found = [hit for path in sorted((ROOT / "rater").rglob("*.py")) for hit in _anchored(path)]
    assert found == [], "use fullmatch without '^...$':\n" + "\n".join(found)


def test_a_trailing_newline_is_not_accepted() -> None:
    token = "0123456789ab." + "A" * 43
    assert split_token(token) is not None
    assert split_token(token + "\n") is None
