"""Every `rater` command's --help, and the grammar of README.md ("Command grammar"): one noun per
group, amounts as options, one name per concept, -o/--output for files, --json where data is
printed, --version only at the top. No service is needed: --help never connects."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from rater.cli.grammar import Deprecated, DeprecatedArgument
from rater.cli.main import cli

#: commands that print no data, so no --json: the services (their output is logs), the stack's
#: process management and logs, and commands whose output is the data itself in its own format
NO_JSON = {
    ("run",),
    ("serve",),
    ("stack", "up"),
    ("stack", "down"),
    ("stack", "logs"),
    ("rate",),  # writes one JSON object a line already
    ("tariff", "export"),  # writes the table (CSV on stdout, or -o FILE)
    ("reseller", "password"),  # reads a password, prints one confirmation line
}

#: option spellings that are gone from the grammar (kept only as hidden deprecations)
RETIRED = {"--tz", "--xlsx", "--csv", "--manifest", "--no-progress", "--base-version"}


def _walk(
    command: click.Command, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command, info_name=path[-1] if path else "rater")
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, f"{' '.join((*path, name))} cannot be loaded"
            yield from _walk(sub, (*path, name))


COMMANDS = list(_walk(cli, ()))
LEAVES = [
    (path, cmd)
    for path, cmd in COMMANDS
    if not isinstance(cmd, click.Group)
    or (isinstance(cmd, click.Group) and cmd.invoke_without_command)
]


def _id(path: tuple[str, ...]) -> str:
    return " ".join(path) or "rater"


def _visible_options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option) and not p.hidden]


def test_every_group_and_command_is_walked() -> None:
    paths = {_id(path) for path, _ in COMMANDS}
    assert {"card create", "card export", "card topup", "customer topup", "report daily"} <= paths
    assert "cards" not in paths  # one noun per group: the old name is a hidden alias
    assert len(paths) > 60


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[_id(p) for p, _ in COMMANDS])
def test_help_exits_0_with_a_description_and_help_on_every_option(
    path: tuple[str, ...], command: click.Command
) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("Usage: "), result.output
    description = [line for line in lines[1:4] if line.strip()]
    assert description, f"{_id(path)} --help has no description line"
    assert (command.help or "").strip(), f"{_id(path)} has no docstring"
    for option in _visible_options(command):
        assert option.help, f"{_id(path)}: {'/'.join(option.opts)} has no help text"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[_id(p) for p, _ in COMMANDS])
def test_the_grammar(path: tuple[str, ...], command: click.Command) -> None:
    name = _id(path)
    spellings = {opt for option in _visible_options(command) for opt in option.opts}
    assert not spellings & RETIRED, f"{name} shows {spellings & RETIRED}"
    if path:
        assert "--version" not in spellings, f"{name}: --version is only the program's version"
    for param in command.params:
        if isinstance(param, click.Argument) and not isinstance(param, DeprecatedArgument):
            assert param.name not in {"amount", "value"}, f"{name}: amounts are options"
        if isinstance(param, Deprecated | DeprecatedArgument):
            assert param.hidden if isinstance(param, Deprecated) else True
            assert not param.expose_value
    if "-o" in spellings or "--output" in spellings:
        option = next(o for o in _visible_options(command) if "--output" in o.opts)
        assert option.opts[:2] == ["-o", "--output"], f"{name}: -o/--output FILE"
    for option in _visible_options(command):
        for opt in option.opts:
            assert "zone" not in opt or opt == "--timezone", f"{name}: {opt}"


@pytest.mark.parametrize(("path", "command"), LEAVES, ids=[_id(p) for p, _ in LEAVES])
def test_json_wherever_data_is_printed(path: tuple[str, ...], command: click.Command) -> None:
    spellings = {opt for option in _visible_options(command) for opt in option.opts}
    if path in NO_JSON:
        assert "--json" not in spellings or path == ("rate",)
        return
    assert "--json" in spellings, f"{_id(path)} prints data: it needs --json"


def test_top_level_quiet_and_version() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert "-q, --quiet" in result.output
    assert "--version" in result.output
    version = CliRunner().invoke(cli, ["--version"])
    assert version.exit_code == 0
    assert "version" in version.output


def test_old_group_name_is_hidden_but_answers() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert "cards" not in result.output.split("Commands:")[1].split()
    old = CliRunner().invoke(cli, ["cards", "create", "--help"])
    assert old.exit_code == 0
    assert "`rater cards` is deprecated" in old.stderr
    assert "`rater card`" in old.stderr


def test_amount_positional_is_left_out_of_the_usage() -> None:
    for path in (["card", "topup"], ["customer", "topup"]):
        result = CliRunner().invoke(cli, [*path, "--help"])
        usage = result.output.splitlines()[0]
        assert "AMOUNT" not in usage, usage
        assert "--amount AMOUNT" in result.output


@pytest.mark.parametrize(
    ("args", "env", "level"),
    [
        (["tariff", "--help"], {}, "WARNING"),
        (["card", "show", "--help"], {}, "WARNING"),
        (["run", "--help"], {}, "INFO"),
        (["serve", "--help"], {}, "INFO"),
        (["tariff", "--help"], {"RATER_LOG_LEVEL": "INFO"}, "INFO"),
        (["run", "--help"], {"RATER_LOG_LEVEL": "ERROR"}, "ERROR"),
        (["--log-level", "debug", "tariff", "--help"], {"RATER_LOG_LEVEL": "ERROR"}, "DEBUG"),
    ],
)
def test_commands_log_at_warning_and_the_services_at_info(
    args: list[str], env: dict[str, str], level: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rater.cli.main

    seen: list[str] = []
    monkeypatch.delenv("RATER_LOG_LEVEL", raising=False)
    monkeypatch.setattr(rater.cli.main, "configure_logging", lambda s: seen.append(s.log_level))
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert seen == [level]
