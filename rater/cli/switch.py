"""`rater switch`: per-switch number and time settings (kept in Redis)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from rater.cli._output import emit_json, emit_json_lines, json_lines_option, json_option
from rater.cli.grammar import Group
from rater.cli.main import settings_of
from rater.cli.switch_token import token
from rater.escape import terminal
from rater.pipeline.formats import FORMATS
from rater.pipeline.formats.common import dump_options, parse_options
from rater.redis.connection import connect
from rater.serve.credentials import Credentials, parse_networks, parse_resellers
from rater.switches.registry import SwitchRegistry
from rater.tariffs.model import SwitchSettings


def _registry(ctx: click.Context) -> SwitchRegistry:
    return SwitchRegistry(connect(settings_of(ctx)))


def _json(settings: SwitchSettings, credentials: Credentials | None = None) -> dict[str, Any]:
    """A switch's settings as --json prints them (the mapping's TOML text in full)."""
    data: dict[str, Any] = {
        "switch": settings.name,
        "country": settings.country_code,
        "trunk_prefix": settings.trunk_prefix,
        "tech_prefix": settings.tech_prefix,
        "timezone": settings.timezone,
        "format": settings.format,
        "options": parse_options(settings.options),
        "mapping": settings.mapping or None,
    }
    if credentials is not None:
        scope = credentials.scope(settings.name)
        data["resellers"] = sorted(scope.resellers)
        data["allow_ip"] = [str(network) for network in scope.networks]
    return data


def _show(settings: SwitchSettings, credentials: Credentials | None = None) -> str:
    text = (
        f"{settings.name}: country {settings.country_code or '-'}, "
        f"trunk prefix {settings.trunk_prefix or '-'}, tech prefix {settings.tech_prefix or '-'}, "
        f"time zone {settings.timezone}, format {settings.format}"
    )
    options = parse_options(settings.options)
    if options:
        text += " (" + ", ".join(f"{k}={v}" for k, v in sorted(options.items())) + ")"
    if settings.mapping:
        text += f", mapping of {len(settings.mapping.splitlines())} lines"
    if credentials is not None:
        resellers, networks = credentials.scope(settings.name).describe()
        text += f"; acts for resellers {resellers}, from {networks}"
    return terminal(text)


@click.group(cls=Group)
def switch() -> None:
    """Per-switch settings: default country, trunk prefix, tech prefixes, time zone, CDR format,
    and the API tokens and scopes of `rater serve`."""


@switch.command("set")
@click.argument("name")
@click.option("--country", help="Country code for national numbers, e.g. 31 or 1.")
@click.option("--trunk-prefix", help="National trunk prefix, e.g. 0 (1 in North America).")
@click.option("--tech-prefix", help=r"Regex of carrier tech prefixes to strip, e.g. '^\d{5}#'.")
@click.option("--timezone", metavar="ZONE", help="IANA time zone of timestamps without an offset.")
@click.option(
    "--resellers", help="Resellers its `rater serve` token acts for: r1,r2 or '*' ('' none)."
)
@click.option("--allow-ip", help="Addresses or networks it may call from ('' any): 192.0.2.0/24")
@click.option("--format", "format_", type=click.Choice(list(FORMATS)), help="Its CDR format.")
@click.option(
    "--mapping",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML field mapping (format mapping; docs/SWITCHES.md).",
)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="A format option, e.g. encode-values=false (KEY= removes it; docs/SWITCHES.md).",
)
@json_option
@click.pass_context
def set_(
    ctx: click.Context,
    *,
    name: str,
    country: str | None,
    trunk_prefix: str | None,
    tech_prefix: str | None,
    timezone: str | None,
    resellers: str | None,
    allow_ip: str | None,
    format_: str | None,
    mapping: Path | None,
    options: tuple[str, ...],
    as_json: bool,
) -> None:
    """Set some settings of a switch; the others keep their current values."""
    registry = _registry(ctx)
    credentials = Credentials(registry.redis)
    scope_resellers = parse_resellers(resellers) if resellers is not None else None
    scope_networks = parse_networks(allow_ip) if allow_ip is not None else None
    changes = {
        "country_code": country,
        "trunk_prefix": trunk_prefix,
        "tech_prefix": tech_prefix,
        "timezone": timezone,
    }
    current = registry.get(name)
    if format_ is not None and format_ != current.format:
        changes["options"] = ""  # another format's options do not carry over
    changes["format"] = format_
    changes["mapping"] = mapping.read_text(encoding="utf-8") if mapping is not None else None
    if options:
        changes["options"] = _options(changes.get("options") or current.options, options)
    updated = dataclasses.replace(current, **{k: v for k, v in changes.items() if v is not None})
    registry.set(updated)  # ConfigError naming a bad setting (rater's one-line error)
    if scope_resellers is not None or scope_networks is not None:
        credentials.set_scope(name, resellers=scope_resellers, networks=scope_networks)
    _print(updated, credentials, as_json)


def _print(settings: SwitchSettings, credentials: Credentials, as_json: bool) -> None:
    if as_json:
        emit_json(_json(settings, credentials))
    else:
        click.echo(_show(settings, credentials))


def _options(stored: str, given: tuple[str, ...]) -> str:
    values = parse_options(stored)
    for item in given:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--option")
        if value:
            values[key] = value
        else:
            values.pop(key, None)
    return dump_options(values)


@switch.command("show")
@click.argument("name")
@json_option
@click.pass_context
def show(ctx: click.Context, name: str, as_json: bool) -> None:
    """A switch's settings (the defaults when never set)."""
    registry = _registry(ctx)
    _print(registry.get(name), Credentials(registry.redis), as_json)


@switch.command("list")
@json_lines_option
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """Every switch with settings (--json: one object per switch)."""
    switches = _registry(ctx).list()
    if as_json:
        emit_json_lines(_json(settings) for settings in switches)
        return
    if not switches:
        click.echo("no switches configured (every switch uses the defaults)")
    for settings in switches:
        click.echo(_show(settings))


switch.add_command(token)
