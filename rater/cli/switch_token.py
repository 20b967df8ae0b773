"""`rater switch token create|list|revoke`: the API tokens of `rater serve` (one or more per
switch; rater/serve/credentials.py keeps only their SHA-256)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from rater.cli.main import settings_of
from rater.redis.connection import connect
from rater.serve.credentials import Credentials


def _credentials(ctx: click.Context) -> Credentials:
    return Credentials(connect(settings_of(ctx)))


@click.group()
def token() -> None:
    """API tokens switches send to `rater serve` (Authorization: Bearer <token>)."""


@token.command("create")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help='Print {"token": ..., ...} only.')
@click.pass_context
def create(ctx: click.Context, name: str, as_json: bool) -> None:
    """A new token for switch NAME, printed once: only its hash is kept."""
    credentials = _credentials(ctx)
    issued = credentials.create_token(name)
    if as_json:
        click.echo(
            json.dumps({"token": issued.token, "id": issued.token_id, "switch": issued.switch})
        )
        return
    click.echo(issued.token)
    click.echo(
        f"token {issued.token_id} for switch {name}: store it now, it is not shown again",
        err=True,
    )
    resellers, _ = credentials.scope(name).describe()
    if resellers == "(none)":
        click.echo(
            f"switch {name} acts for no reseller yet: rater switch set {name} --resellers ...",
            err=True,
        )


@token.command("list")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per token.")
@click.pass_context
def list_(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Token ids (never the tokens) of switch NAME, or of every switch."""
    tokens = _credentials(ctx).list_tokens(name)
    for info in tokens:
        created = datetime.fromtimestamp(info.created, UTC)
        if as_json:
            click.echo(
                json.dumps({"id": info.token_id, "switch": info.switch, "created": str(created)})
            )
        else:
            click.echo(f"{info.switch:<20} {info.token_id}  created {created:%Y-%m-%d %H:%M} UTC")
    if not tokens and not as_json:
        click.echo("no tokens")


@token.command("revoke")
@click.argument("name")
@click.option("--id", "token_ids", multiple=True, help="Only this token (repeatable).")
@click.pass_context
def revoke(ctx: click.Context, name: str, token_ids: tuple[str, ...]) -> None:
    """Revoke switch NAME's tokens (all, or those given with --id); every `rater serve`
    process refuses them within 5 s."""
    gone = _credentials(ctx).revoke(name, token_ids)
    click.echo(f"revoked {len(gone)} token(s) of switch {name}: {' '.join(gone) or '-'}")
