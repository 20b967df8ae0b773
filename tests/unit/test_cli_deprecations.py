"""Every old spelling of README.md's "Command grammar" still parses to what its new spelling
parses to, for one release, and warns once on stderr naming the new spelling; giving both is a
usage error. (tests/integration/test_cli_deprecations.py runs some of them end to end.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest

from rater.cli.grammar import QUIET
from rater.cli.main import cli

#: (command path, old arguments, new arguments, the new spelling the warning names)
CASES: list[tuple[tuple[str, ...], list[str], list[str], str]] = [
    (("card", "topup"), ["8123", "5", "--reason", "r"], ["8123", "--amount", "5", "--reason", "r"],
     "--amount"),
    (("customer", "topup"), ["c1", "5", "--reason", "r"], ["c1", "--amount", "5", "--reason", "r"],
     "--amount"),
    (("card", "create"), ["--customer", "c", "--count", "1", "--value", "5", "--xlsx", "a.xlsx"],
     ["--customer", "c", "--count", "1", "--value", "5", "-o", "a.xlsx"], "-o/--output"),
    (("card", "export"), ["--batch", "b", "--xlsx", "a.xlsx"], ["--batch", "b", "-o", "a.xlsx"],
     "-o/--output"),
    (("report", "daily"), ["--tz", "Europe/Amsterdam"], ["--timezone", "Europe/Amsterdam"],
     "--timezone"),
    (("report", "margin"), ["--csv", "m.csv"], ["-o", "m.csv"], "-o FILE.csv"),
    (("report", "cards"), ["--xlsx", "m.xlsx"], ["-o", "m.xlsx"], "-o FILE.xlsx"),
    (("report", "query"), ["q", "--csv", "m.csv"], ["q", "-o", "m.csv"], "-o FILE.csv"),
    (("tariff", "show"), ["t", "--version", "2"], ["t", "--tariff-version", "2"],
     "--tariff-version"),
    (("tariff", "export"), ["t", "--version", "2"], ["t", "--tariff-version", "2"],
     "--tariff-version"),
    (("tariff", "derive"), ["--base", "b", "--name", "n", "--markup", "5", "--base-version", "2"],
     ["--base", "b", "--name", "n", "--markup", "5", "--tariff-version", "2"], "--tariff-version"),
    (("rerate",), ["--unrated", "--version", "3"], ["--unrated", "--tariff-version", "3"],
     "--tariff-version"),
    (("card", "create"), ["--customer", "c", "--count", "1", "--value", "5", "--batch-id", "b1"],
     ["--customer", "c", "--count", "1", "--value", "5", "--batch", "b1"], "--batch"),
    (("run",), ["--batch", "100"], ["--batch-size", "100"], "--batch-size"),
    (("loadgen",), ["--count", "1", "--manifest", "m.json"], ["--count", "1", "-o", "m.json"],
     "-o/--output"),
]  # fmt: skip


def _parse(path: tuple[str, ...], args: list[str]) -> tuple[dict[str, Any], click.Context]:
    """The parameters a command gets for `rater PATH ARGS` (parsed, not run)."""
    root = click.Context(cli, info_name="rater")
    parent = root
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        found = command.get_command(parent, name)
        assert found is not None
        command = found
        if isinstance(command, click.Group) and name != path[-1]:
            parent = click.Context(command, info_name=name, parent=parent)
    ctx = command.make_context(path[-1], list(args), parent=parent)
    return ctx.params, root


@pytest.mark.parametrize(
    ("path", "old", "new", "spelling"), CASES, ids=[" ".join(c[0]) + " " + c[3] for c in CASES]
)
def test_old_spelling_parses_as_the_new_one_and_warns(
    path: tuple[str, ...],
    old: list[str],
    new: list[str],
    spelling: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    expected, _ = _parse(path, new)
    assert capsys.readouterr().err == ""  # the new spelling says nothing
    got, _ = _parse(path, old)
    assert got == expected
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1, warning  # one line
    assert "deprecated" in warning
    assert f"use {spelling}" in warning


@pytest.mark.parametrize(
    ("path", "old", "new", "spelling"), CASES, ids=[" ".join(c[0]) + " " + c[3] for c in CASES]
)
def test_old_and_new_spelling_together_is_a_usage_error(
    path: tuple[str, ...], old: list[str], new: list[str], spelling: str
) -> None:
    start = next(i for i, arg in enumerate(new) if arg not in old)
    extra = new[start : start + 2]  # the new option and its value
    with pytest.raises(click.UsageError, match="old spelling"):
        _parse(path, [*old, *extra])


def test_no_progress_is_the_top_level_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    _, root = _parse(("loadgen",), ["--count", "1", "--no-progress"])
    assert root.meta[QUIET] is True
    assert "use `rater --quiet loadgen`" in capsys.readouterr().err


def test_card_create_manifest_path_is_a_path() -> None:
    params, _ = _parse(("card", "create"), ["--customer", "c", "--count", "1", "--value", "5",
                                            "--xlsx", "a.xlsx"])  # fmt: skip
    assert params["output"] == Path("a.xlsx")


def test_amount_is_required_when_neither_spelling_is_given() -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, ["card", "topup", "8123", "--reason", "r"])
    assert result.exit_code == 2
    assert "Missing option '--amount'" in result.output
