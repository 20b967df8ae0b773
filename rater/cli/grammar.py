"""The one grammar of the `rater` commands (README.md, "Command grammar"), and the old spellings
kept for one release.

- One noun per group (`rater card ...`), amounts as options (`--amount`, or `--add`/`--deduct`
  where a correction goes both ways), `--timezone` for a time zone, `-o/--output FILE` for an
  output file (its format from the extension or `--format`), `--tariff-version` and
  `--buy-version` for tariff versions, `--json` wherever data is printed; `--version` and
  `--quiet` only at the top.
- An old spelling still works for one release: it is hidden from --help, prints one line on
  stderr naming the new spelling, and hands its value to the new option (`Deprecated`,
  `DeprecatedArgument`). Giving both spellings at once is a usage error.

Every command is a `Command` (groups are `Group`, whose subcommands are `Command` by default):
it moves the values of old spellings to their new names once the command line is parsed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from rater.escape import terminal

#: ctx.meta key: values given with an old spelling, by the name of the new parameter
_PENDING = "rater.grammar.pending"
#: ctx.meta key (root context): --quiet
QUIET = "rater.quiet"


def deprecation(old: str, new: str) -> None:
    """The one line an old spelling prints on stderr (before anything else happens)."""
    click.secho(
        f"warning: {old} is deprecated and goes away in the next release: use {new}",
        fg="yellow",
        err=True,
    )


def quiet() -> bool:
    """Whether `rater --quiet` was given: no progress bars, no informational lines."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.find_root().meta.get(QUIET, False))


def be_quiet(ctx: click.Context, _value: object = True) -> None:
    """What `rater --quiet` does, for an old per-command spelling of it (loadgen's
    --no-progress)."""
    ctx.find_root().meta[QUIET] = True


def info(message: str) -> None:
    """An informational line on stderr (what was written where, how long it took), unless
    --quiet. Data goes to stdout; errors and warnings are printed whatever --quiet says."""
    if not quiet():
        click.echo(terminal(message, newlines=True), err=True)


def _hand_over(ctx: click.Context, dest: str, spelling: str, value: Any) -> None:
    ctx.meta.setdefault(_PENDING, {})[dest] = (spelling, value)


class Deprecated(click.Option):
    """An old option spelling: hidden, warns once naming `new`, and passes its value on to the
    parameter named `dest` (or, with `apply`, does what `apply` does with the value)."""

    def __init__(
        self,
        param_decls: Sequence[str],
        *,
        new: str,
        dest: str | None = None,
        apply: Callable[[click.Context, Any], None] | None = None,
        **attrs: Any,
    ) -> None:
        super().__init__(param_decls, hidden=True, expose_value=False, callback=self._take, **attrs)
        self.new = new
        self.dest = dest
        self.apply = apply

    def _take(self, ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if self.name is None or ctx.get_parameter_source(self.name) is not (
            ParameterSource.COMMANDLINE
        ):
            return
        spelling = self.opts[0]
        deprecation(spelling, self.new)
        if self.apply is not None:
            self.apply(ctx, value)
        elif self.dest is not None:
            _hand_over(ctx, self.dest, spelling, value)


class DeprecatedArgument(click.Argument):
    """An old positional argument (an amount that is now `--amount`): optional, left out of
    the usage line, warns once naming `new`, and passes its value on to `dest`."""

    def __init__(self, param_decls: Sequence[str], *, new: str, dest: str, **attrs: Any) -> None:
        super().__init__(
            param_decls, required=False, expose_value=False, callback=self._take, **attrs
        )
        self.new = new
        self.dest = dest

    def get_usage_pieces(self, ctx: click.Context) -> list[str]:
        return []

    def _take(self, ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is None:
            return
        spelling = f"the positional {self.make_metavar(ctx)}"
        deprecation(spelling, self.new)
        _hand_over(ctx, self.dest, spelling, value)


class Command(click.Command):
    """A command whose old spellings hand their values to the new parameters."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        pending: dict[str, tuple[str, Any]] = ctx.meta.pop(_PENDING, {})
        for dest, (spelling, value) in pending.items():
            if ctx.get_parameter_source(dest) is ParameterSource.COMMANDLINE:
                raise click.UsageError(
                    f"{spelling} is the old spelling of {_spelling_of(self, dest)}: give one",
                    ctx,
                )
            ctx.params[dest] = value
        return rest


class Group(click.Group):
    """A group whose subcommands and subgroups follow the grammar."""

    command_class = Command
    group_class = type  # subgroups are of this class too


def _spelling_of(command: click.Command, dest: str) -> str:
    for param in command.params:
        if param.name == dest and isinstance(param, click.Option):
            return "/".join(param.opts)
    return dest


def required(value: Any, option: str) -> Any:
    """A value an option must have. Options with an old spelling are checked here, after the
    old spelling handed its value over, rather than by click (which checks before)."""
    if value is None:
        raise click.MissingParameter(param_hint=f"'{option}'", param_type="option")
    return value


# ---------------------------------------------------------------------------- output files
def output_option(formats: Sequence[str], what: str) -> Callable[[Any], Any]:
    """-o/--output FILE and --format, for a command that can write a file. `what` ends the
    help text (what is written without -o)."""
    choices = ", ".join(f".{name}" for name in formats)

    def decorate(function: Any) -> Any:
        function = click.option(
            "--format",
            "output_format",
            type=click.Choice(list(formats)),
            help=f"Format of the output [from the extension of -o: {choices}].",
        )(function)
        return click.option(
            "-o",
            "--output",
            "output",
            type=click.Path(dir_okay=False, path_type=Path),
            metavar="FILE",
            help=f"Write to FILE ({choices}) [{what}].",
        )(function)

    return decorate


def format_of(output: Path | None, given: str | None, formats: Sequence[str]) -> str | None:
    """The format to write: --format, else the extension of -o/--output; None for neither."""
    if given is not None:
        return given
    if output is None:
        return None
    suffix = output.suffix.lower().lstrip(".")
    if suffix not in formats:
        allowed = ", ".join(f".{name}" for name in formats)
        raise click.BadParameter(
            f"{output} does not end in {allowed}; name the format with --format",
            param_hint="-o/--output",
        )
    return suffix


__all__ = [
    "QUIET",
    "Command",
    "Deprecated",
    "DeprecatedArgument",
    "Group",
    "be_quiet",
    "deprecation",
    "format_of",
    "info",
    "output_option",
    "quiet",
    "required",
]
