"""`rater switch token create|list|revoke`: the API tokens of `rater serve` (one or more per
switch; rater/serve/credentials.py keeps only their SHA-256)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from rater.cli._output import emit_json, emit_json_lines, json_lines_option, json_option, warn
from rater.cli.grammar import Group, info
from rater.cli.main import settings_of
from rater.escape import terminal
from rater.redis.connection import connect
from rater.serve.credentials import Credentials


def _credentials(ctx: click.Context) -> Credentials:
    return Credentials(connect(settings_of(ctx)))


@click.group(cls=Group)
def token() -> None:
    """API tokens switches send to `rater serve` (Authorization: Bearer <token>)."""


@token.command("create")
@click.argument("name")
@json_option
@click.pass_context
def create(ctx: click.Context, name: str, as_json: bool) -> None:
    """A new token for switch NAME, printed once: only its hash is kept."""
    credentials = _credentials(ctx)
    issued = credentials.create_token(name)
    if as_json:
        emit_json({"token": issued.token, "id": issued.token_id, "switch": issued.switch})
        return
    click.echo(issued.token)
    info(f"token {issued.token_id} for switch {name}: store it now, it is not shown again")
    resellers, _ = credentials.scope(name).describe()
    if resellers == "(none)":
        warn(f"switch {name} acts for no reseller yet: rater switch set {name} --resellers ...")


@token.command("list")
@click.argument("name", required=False)
@json_lines_option
@click.pass_context
def list_(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Token ids (never the tokens) of switch NAME, or of every switch (--json: one object per
    token)."""
    tokens = _credentials(ctx).list_tokens(name)
    for token_info in tokens:
        created = datetime.fromtimestamp(token_info.created, UTC)
        if as_json:
            emit_json_lines(
                [{"id": token_info.token_id, "switch": token_info.switch, "created": created}]
            )
        else:
            click.echo(
                terminal(
                    f"{token_info.switch:<20} {token_info.token_id}  "
                    f"created {created:%Y-%m-%d %H:%M} UTC"
                )
            )
    if not tokens and not as_json:
        click.echo("no tokens")


@token.command("revoke")
@click.argument("name")
@click.option("--id", "token_ids", multiple=True, help="Only this token (repeatable).")
@json_option
@click.pass_context
def revoke(ctx: click.Context, name: str, token_ids: tuple[str, ...], as_json: bool) -> None:
    """Revoke switch NAME's tokens (all, or those given with --id); every `rater serve`
    process refuses them within 5 s."""
    gone = _credentials(ctx).revoke(name, token_ids)
    if as_json:
        emit_json({"switch": name, "revoked": list(gone)})
        return
    click.echo(terminal(f"revoked {len(gone)} token(s) of switch {name}: {' '.join(gone) or '-'}"))
