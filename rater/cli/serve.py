"""`rater serve`: the authenticated HTTP service switches ask at call setup (docs/SERVE.md)."""

from __future__ import annotations

import click

from rater.cli.grammar import Command
from rater.cli.main import settings_of
from rater.serve import server


@click.command(cls=Command)
@click.option("--host", help="Address to listen on [RATER_HTTP_HOST, 127.0.0.1].")
@click.option("--port", type=int, help="Port to listen on [RATER_HTTP_PORT, 18080].")
@click.option("--workers", type=click.IntRange(min=1), help="Processes [RATER_HTTP_WORKERS, 1].")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int | None) -> None:
    """Serve /v1/authorize, card balances and account look-ups to switches over HTTP.

    \b
    Every endpoint that touches money or cards needs a switch token:
      rater switch token create sw1          prints the token once
      rater switch set sw1 --resellers r1    the resellers sw1 acts for
    then `Authorization: Bearer <token>`. SIGTERM stops it after in-flight requests finish.
    """
    settings = settings_of(ctx).replace(http_host=host, http_port=port, http_workers=workers)
    server.run(settings)
